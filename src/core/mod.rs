//! The pure domain: no API client, no registry client, no printing.

pub(crate) mod catalog;
pub(crate) mod catalog_import;
pub(crate) mod catalog_index;
pub(crate) mod container;
pub(crate) mod contexts;
pub(crate) mod credentials;
pub(crate) mod digest;
pub(crate) mod edit;
pub(crate) mod enablement;
pub(crate) mod helm;
pub(crate) mod image_ref;
pub(crate) mod inventory;
pub(crate) mod names;
pub(crate) mod plan;
pub(crate) mod platform;
pub(crate) mod podtemplate;
pub(crate) mod proxy;
pub(crate) mod pullsecrets;
pub(crate) mod resolution;
pub(crate) mod rollout;
pub(crate) mod show_report;
pub(crate) mod state;
pub(crate) mod status_report;
pub(crate) mod values;
pub(crate) mod values_out;

/// One `-v=6` request line, as kubectl prints it (`round_trippers.go`): `GET URL 200 OK in 5
/// milliseconds`; a request that got no response `failed`, with the transport error when the
/// caller has one safe to print. The API server's client and the registry client both log this.
pub(crate) fn request_line(
    method: &dyn std::fmt::Display,
    url: &str,
    outcome: std::result::Result<&dyn std::fmt::Display, Option<&str>>,
    took: std::time::Duration,
) -> String {
    let ms = took.as_millis();
    match outcome {
        Ok(status) => format!("{method} {url} {status} in {ms} milliseconds"),
        Err(Some(e)) => format!("{method} {url} failed in {ms} milliseconds: {e}"),
        Err(None) => format!("{method} {url} failed in {ms} milliseconds"),
    }
}

/// `sha256:` and the first 12 hex digits, for tables (full digests in `-o wide` and JSON).
/// Char-based: a value that is not a digest (non-ASCII included) is shortened, never split
/// inside a UTF-8 sequence.
pub(crate) fn short_digest(d: &str) -> String {
    match d.split_once(':') {
        Some((alg, hex)) if hex.chars().count() > 12 => {
            format!("{alg}:{}", hex.chars().take(12).collect::<String>())
        }
        _ => d.to_string(),
    }
}

/// Natural order of names, as people count: `fleet-2` before `fleet-10`. Runs of ASCII digits
/// compare by value (then by length, so `01` and `1` stay distinct and ordered), everything
/// else by character.
pub(crate) fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut x, mut y) = (a.chars().peekable(), b.chars().peekable());
    loop {
        match (x.peek().copied(), y.peek().copied()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let run = |it: &mut std::iter::Peekable<std::str::Chars>| {
                    let mut s = String::new();
                    while let Some(c) = it.next_if(char::is_ascii_digit) {
                        s.push(c);
                    }
                    s
                };
                let (m, n) = (run(&mut x), run(&mut y));
                let (mt, nt) = (m.trim_start_matches('0'), n.trim_start_matches('0'));
                let o = mt
                    .len()
                    .cmp(&nt.len())
                    .then_with(|| mt.cmp(nt))
                    .then_with(|| m.len().cmp(&n.len()));
                if o != Ordering::Equal {
                    return o;
                }
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(&d);
                }
                x.next();
                y.next();
            }
        }
    }
}

/// The one pluralising rule of every message: `one` for exactly 1, `many` for any other count
/// (0 too: "0 tags"). Words that agree with a count (`is`/`are`, `its`/`their`) take it as well.
pub(crate) fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// `1 tag`, `2 tags`: a count and the word in the number it takes ([`plural`]).
pub(crate) fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", plural(n, one, many))
}

#[cfg(test)]
mod tests {
    #[test]
    fn natural_order_counts_numbers() {
        let mut names = vec![
            "fleet-10",
            "fleet-2",
            "fleet-1",
            "fleet-100",
            "alpha",
            "fleet-02",
            "fleet-b",
            "fleet-a9",
        ];
        names.sort_by(|a, b| super::natural_cmp(a, b));
        assert_eq!(
            names,
            [
                "alpha",
                "fleet-1",
                "fleet-2",
                "fleet-02",
                "fleet-10",
                "fleet-100",
                "fleet-a9",
                "fleet-b"
            ]
        );
        assert_eq!(super::natural_cmp("x", "x"), std::cmp::Ordering::Equal);
    }

    #[test]
    fn short_digest_never_splits_a_character() {
        assert_eq!(
            super::short_digest(&format!("sha256:{}", "a".repeat(64))),
            "sha256:aaaaaaaaaaaa"
        );
        assert_eq!(
            super::short_digest(&format!("sha256:{}", "é".repeat(20))),
            format!("sha256:{}", "é".repeat(12))
        );
        assert_eq!(super::short_digest("sha256:abc"), "sha256:abc");
    }
}
