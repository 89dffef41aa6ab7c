//! Several kubeconfig contexts in one run (`--contexts`, `--all-contexts`): which contexts a list
//! of names and globs selects, what became of each context, the exit code across them, and the
//! candidates shell completion offers. Pure: the kubeconfig is read in `kube::config`.

use serde::Serialize;

use crate::error::{ErrorKind, ExitStatus};

/// How many contexts are read at once. Each context's own reads are already concurrent (lists,
/// registry lookups bounded by `--concurrency`); this bounds the API servers talked to at once.
pub(crate) const CONTEXTS_AT_ONCE: usize = 8;

/// The request timeout of each context when `--request-timeout` is not given: an API server
/// that accepts connections and never answers is that context's row ("unreachable") after this
/// long, never a stalled run (kube's own default waits 295 s on a read).
pub(crate) const DEFAULT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Splits `--contexts a,b,'prod-*'` into its items; an empty item (`a,,b`, a trailing comma) is
/// refused rather than ignored.
pub(crate) fn parse_list(list: &str) -> Result<Vec<String>, String> {
    let items: Vec<String> = list.split(',').map(|s| s.trim().to_string()).collect();
    if items.iter().any(String::is_empty) {
        return Err(format!(
            "--contexts {list:?}: an empty name; give comma-separated context names or globs, e.g. --contexts 'staging,prod-*'"
        ));
    }
    Ok(items)
}

/// Shell-style glob match over the whole name: `*` any run of characters, `?` one character,
/// `[abc]` / `[a-z]` / `[!abc]` one character of (or not of) a set. A `[` without its `]`
/// matches itself.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    matches_from(&p, &n)
}

fn matches_from(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|i| matches_from(&p[1..], &n[i..])),
        Some('?') => !n.is_empty() && matches_from(&p[1..], &n[1..]),
        Some('[') => match class(&p[1..]) {
            Some((set, negated, rest)) => n.first().is_some_and(|c| {
                let inside = set.iter().any(|&(lo, hi)| lo <= *c && *c <= hi);
                inside != negated && matches_from(&p[rest + 1..], &n[1..])
            }),
            None => n.first() == Some(&'[') && matches_from(&p[1..], &n[1..]),
        },
        Some(c) => n.first() == Some(c) && matches_from(&p[1..], &n[1..]),
    }
}

/// A character class after its `[`: the ranges, whether it is negated, and how many characters
/// of `p` it took (its `]` included). `None` when there is no closing `]`.
type Class = (Vec<(char, char)>, bool, usize);

fn class(p: &[char]) -> Option<Class> {
    let negated = matches!(p.first(), Some('!' | '^'));
    let mut i = usize::from(negated);
    let mut set = vec![];
    // A `]` right after the `[` (or `[!`) is a member, as in shells.
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((set, negated, i + 1));
        }
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            set.push((p[i], p[i + 2]));
            i += 3;
        } else {
            set.push((p[i], p[i]));
            i += 1;
        }
        first = false;
    }
    None
}

/// The contexts `patterns` select from `available` (the kubeconfig's, in its order), each once,
/// in the kubeconfig's order. A name that is not there, or a glob that matches nothing, is an
/// error naming the contexts there are: a typo must not shrink the fleet silently.
pub(crate) fn select(patterns: &[String], available: &[String]) -> Result<Vec<String>, String> {
    let mut unmatched = vec![];
    for p in patterns {
        if !available.iter().any(|a| glob_match(p, a)) {
            unmatched.push(p.as_str());
        }
    }
    if !unmatched.is_empty() {
        let there = if available.is_empty() {
            "the kubeconfig has no contexts".to_string()
        } else {
            format!("contexts there: {}", available.join(", "))
        };
        return Err(format!(
            "--contexts: no kubeconfig context matches {} ({there})",
            unmatched
                .iter()
                .map(|u| format!("{u:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut out: Vec<String> = vec![];
    for a in available {
        if patterns.iter().any(|p| glob_match(p, a)) && !out.contains(a) {
            out.push(a.clone());
        }
    }
    Ok(out)
}

/// What became of one context. Ordered by how bad it is, so the worst across contexts is `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Outcome {
    /// Read, and in order.
    Ok,
    /// Read, and something is not in order (a problem, a refused read, a container not pinned).
    NotInOrder,
    /// Read, but no Astronomer platform (no Houston) was found there.
    NoPlatform,
    /// The API server refused the context's credentials (401).
    Unauthorized,
    /// The context's user may not read what the command needs (403).
    Forbidden,
    /// The API server did not answer: refused, unresolvable, or silent past the request timeout.
    Unreachable,
    /// Anything else that stopped this context (its configuration, an API error).
    Error,
}

impl Outcome {
    /// The outcome of a context whose run ended with an error of this kind.
    pub(crate) fn from_error(kind: ErrorKind) -> Outcome {
        match kind {
            ErrorKind::Unauthorized => Outcome::Unauthorized,
            ErrorKind::Forbidden => Outcome::Forbidden,
            ErrorKind::Unreachable | ErrorKind::Timeout => Outcome::Unreachable,
            ErrorKind::NotOk => Outcome::NotInOrder,
            _ => Outcome::Error,
        }
    }

    /// The word tables show.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NotInOrder => "not-in-order",
            Outcome::NoPlatform => "no-platform",
            Outcome::Unauthorized => "unauthorized",
            Outcome::Forbidden => "forbidden",
            Outcome::Unreachable => "unreachable",
            Outcome::Error => "error",
        }
    }

    /// The exit code this context would give on its own: 0 in order; 1 not in order, or no
    /// platform, when checking (`--check`); 2 when it could not be read at all.
    pub(crate) fn exit_code(self, check: bool) -> ExitStatus {
        match self {
            Outcome::Ok => ExitStatus::Success,
            Outcome::NotInOrder | Outcome::NoPlatform if check => ExitStatus::NotOk,
            Outcome::NotInOrder | Outcome::NoPlatform => ExitStatus::Success,
            _ => ExitStatus::Failed,
        }
    }
}

/// The exit code of a run across contexts: the worst any context gives (see
/// [`Outcome::exit_code`]); no context at all is not in order.
pub(crate) fn exit_code(outcomes: &[Outcome], check: bool) -> ExitStatus {
    outcomes
        .iter()
        .map(|o| o.exit_code(check))
        .max()
        .unwrap_or(ExitStatus::Failed)
}

/// Shell-completion candidates for `--contexts` while `typed` is being typed: the items already
/// typed are kept, and the last one completes to a context name, or to a glob over the names'
/// prefixes up to a `-`, `_` or `.` (`prod-*` for `prod-eu`, `prod-us`). Names already in the
/// list are not offered again.
pub(crate) fn complete(typed: &str, available: &[String]) -> Vec<String> {
    let (done, last) = match typed.rsplit_once(',') {
        Some((d, l)) => (format!("{d},"), l),
        None => (String::new(), typed),
    };
    let already: Vec<&str> = done.split(',').filter(|s| !s.is_empty()).collect();
    let mut out: Vec<String> = vec![];
    let mut push = |v: String| {
        if v.starts_with(last) && !already.contains(&v.as_str()) && !out.contains(&v) {
            out.push(v);
        }
    };
    for a in available {
        push(a.clone());
    }
    for a in available {
        for (i, c) in a.char_indices() {
            if matches!(c, '-' | '_' | '.') && i > 0 {
                let glob = format!("{}*", &a[..=i]);
                if available.iter().filter(|b| glob_match(&glob, b)).count() > 1 {
                    push(glob);
                }
            }
        }
    }
    out.into_iter().map(|v| format!("{done}{v}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn globs() {
        assert!(glob_match("prod-*", "prod-eu"));
        assert!(glob_match("prod-*", "prod-"));
        assert!(!glob_match("prod-*", "staging-prod-eu"));
        assert!(glob_match("*-eu", "prod-eu"));
        assert!(glob_match("p?od", "prod"));
        assert!(!glob_match("p?od", "pod"));
        assert!(glob_match("prod-[ae]u", "prod-eu"));
        assert!(!glob_match("prod-[!e]u", "prod-eu"));
        assert!(glob_match("r[0-9]", "r7"));
        assert!(glob_match("a[b", "a[b"), "an unclosed [ is itself");
        assert!(glob_match("*", ""));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(glob_match("é*", "été"));
    }

    #[test]
    fn lists() {
        assert_eq!(parse_list("a, b ,prod-*"), Ok(names(&["a", "b", "prod-*"])));
        assert!(parse_list("a,,b").unwrap_err().contains("an empty name"));
        assert!(parse_list("a,").is_err());
        assert!(parse_list("").is_err());
    }

    #[test]
    fn selection_keeps_the_kubeconfig_order_and_each_once() {
        let there = names(&["dev", "prod-eu", "staging", "prod-us"]);
        assert_eq!(
            select(&names(&["prod-*", "dev", "prod-eu"]), &there),
            Ok(names(&["dev", "prod-eu", "prod-us"]))
        );
        assert_eq!(select(&names(&["*"]), &there), Ok(there.clone()));
    }

    #[test]
    fn a_typo_is_refused_with_the_names_there_are() {
        let there = names(&["dev", "prod-eu"]);
        let e = select(&names(&["dev", "prd-*", "qa"]), &there).unwrap_err();
        assert!(e.contains("\"prd-*\", \"qa\""), "{e}");
        assert!(e.contains("contexts there: dev, prod-eu"), "{e}");
        let e = select(&names(&["x"]), &[]).unwrap_err();
        assert!(e.contains("no contexts"), "{e}");
    }

    #[test]
    fn outcomes_and_the_worst_exit_code() {
        use Outcome::*;
        assert_eq!(exit_code(&[Ok, Ok], false).code(), 0);
        assert_eq!(exit_code(&[Ok, NotInOrder], false).code(), 0);
        assert_eq!(exit_code(&[Ok, NotInOrder], true).code(), 1);
        assert_eq!(exit_code(&[Ok, NoPlatform], true).code(), 1);
        assert_eq!(exit_code(&[NotInOrder, Unreachable], true).code(), 2);
        assert_eq!(exit_code(&[Ok, Forbidden], false).code(), 2);
        assert_eq!(exit_code(&[], false).code(), 2);
        assert_eq!(Outcome::from_error(ErrorKind::Timeout), Unreachable);
        assert_eq!(Outcome::from_error(ErrorKind::Forbidden), Forbidden);
        assert_eq!(Outcome::from_error(ErrorKind::NotFound), Error);
        assert!(Unreachable > NotInOrder && NotInOrder > Ok);
    }

    #[test]
    fn completion_offers_names_then_globs_and_keeps_what_is_typed() {
        let there = names(&["dev", "prod-eu", "prod-us", "staging"]);
        assert_eq!(
            complete("", &there),
            names(&["dev", "prod-eu", "prod-us", "staging", "prod-*"])
        );
        assert_eq!(
            complete("pr", &there),
            names(&["prod-eu", "prod-us", "prod-*"])
        );
        assert_eq!(
            complete("dev,s", &there),
            names(&["dev,staging"]),
            "the typed items are kept"
        );
        assert!(!complete("dev,", &there).contains(&"dev,dev".to_string()));
    }
}
