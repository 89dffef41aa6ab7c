//! The project's own check of the source tree's layering (docs/architecture.md), run with the other
//! tests so the rules stay true:
//!
//! 1. no module cycles over `use crate::…`, `crate::x::…` and `use super::…` references;
//! 2. only `src/main.rs`, `src/cli.rs`, `src/args.rs` and `src/commands/**` name the `cli` or `args`
//!    modules: the layers below the commands take ready objects, never flags;
//! 3. no function over 100 lines;
//! 4. the pure core (`src/core/`) names no layer above it: kube, registry, output, commands,
//!    args, cli;
//! 5. the two I/O lanes side by side, `kube` (the API server) and `registry`, do not name each
//!    other: what both need (pull-secret credentials) is core data.
//!
//! Test code (from a file's first `#[cfg(test)]` on) is not judged. The source is read at test
//! time from `CARGO_MANIFEST_DIR/src`. Self-contained on purpose: no shared harness, no crates.
//! The `checker_*` tests feed the checks small synthetic trees with one violation each, so a check
//! that cannot fail would fail here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const MAX_FN_LINES: usize = 100;

/// Functions known to be over the limit, each with the reason it is not split here. An entry that
/// is no longer over the limit fails the test too, so this list only shrinks.
const KNOWN_LONG: &[(&str, &str)] = &[];

/// Modules allowed to name `cli` / `args` (module paths as `module_path` spells them).
fn may_name_the_cli(module: &str) -> bool {
    matches!(module, "main" | "lib" | "cli" | "args")
        || module == "commands"
        || module.starts_with("commands::")
}

/// `src/commands/pin.rs` → `commands::pin`; `src/kube/mod.rs` → `kube`; `src/lib.rs` → `lib`.
fn module_path(rel: &str) -> String {
    let rel = rel.strip_suffix(".rs").unwrap_or(rel).replace('\\', "/");
    let mut parts: Vec<&str> = rel.split('/').collect();
    if parts.len() > 1 && matches!(parts.last(), Some(&"mod")) {
        parts.pop();
    }
    parts.join("::")
}

/// The code that is judged: everything before the first `#[cfg(test)]`, without `//` comments.
fn judged_code(text: &str) -> String {
    let head = text.split("#[cfg(test)]").next().unwrap_or_default();
    head.lines()
        .map(strip_line_comment)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Drops a `//` comment, leaving `//` inside string literals alone.
fn strip_line_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    let mut in_str = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'/' if !in_str && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
        i += 1;
    }
    line
}

/// `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand_use(body: &str) -> Vec<String> {
    let body = body.trim();
    let Some(open) = body.find('{') else {
        let path = body.split(" as ").next().unwrap_or(body).trim();
        return vec![path.to_string()];
    };
    let prefix = body[..open].trim_end_matches("::").trim();
    let inner = body[open + 1..].trim_end().trim_end_matches('}');
    let mut items = vec![];
    let (mut depth, mut cur) = (0, String::new());
    for ch in inner.chars() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if ch == ',' && depth == 0 {
            items.push(std::mem::take(&mut cur));
        } else {
            cur.push(ch);
        }
    }
    items.push(cur);
    let mut out = vec![];
    for item in items.iter().map(|i| i.trim()).filter(|i| !i.is_empty()) {
        for e in expand_use(item) {
            out.push(if prefix.is_empty() {
                e
            } else if e == "self" {
                prefix.to_string()
            } else {
                format!("{prefix}::{e}")
            });
        }
    }
    out
}

/// Every `use <kw>::…;` body in `code`.
fn use_bodies<'a>(code: &'a str, kw: &str) -> Vec<&'a str> {
    let needle = format!("use {kw}::");
    let mut out = vec![];
    let mut rest = code;
    while let Some(i) = rest.find(&needle) {
        let ok_before = i == 0 || !is_ident(rest.as_bytes()[i - 1]);
        let after = &rest[i + needle.len()..];
        let end = after.find(';').unwrap_or(after.len());
        if ok_before {
            out.push(&after[..end]);
        }
        rest = &after[end..];
    }
    out
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Every inline `crate::a::b` path in `code`.
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = vec![];
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let ok_before = i == 0 || !is_ident(rest.as_bytes()[i - 1]);
        let after = &rest[i + "crate::".len()..];
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(after.len());
        let path = after[..len].trim_end_matches(':');
        if ok_before && !path.is_empty() {
            out.push(path.to_string());
        }
        rest = &after[len..];
    }
    out
}

/// The longest known module that `path` (crate-relative) names.
fn resolve<'a>(path: &str, modules: &'a BTreeSet<String>) -> Option<&'a String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .find_map(|n| modules.get(&parts[..n].join("::")))
}

fn related(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"))
}

/// Module → the modules it references (self, ancestors and descendants left out).
fn edges(files: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeSet<String> = files.keys().cloned().collect();
    let mut out = BTreeMap::new();
    for (m, text) in files {
        let code = judged_code(text);
        let mut refs: Vec<String> = vec![];
        for body in use_bodies(&code, "crate") {
            refs.extend(expand_use(body));
        }
        refs.extend(crate_paths(&code));
        let parent = m.rsplit_once("::").map(|(p, _)| p.to_string());
        if let Some(parent) = parent {
            for body in use_bodies(&code, "super") {
                refs.extend(
                    expand_use(body)
                        .into_iter()
                        .map(|r| format!("{parent}::{r}")),
                );
            }
        }
        let targets = refs
            .iter()
            .filter_map(|r| resolve(r, &modules))
            .filter(|t| !related(m, t))
            .cloned()
            .collect();
        out.insert(m.clone(), targets);
    }
    out
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let edges = s.edges;
        for w in edges.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = vec![];
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.found.push(comp);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: vec![],
        on_stack: BTreeSet::new(),
        next: 0,
        found: vec![],
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

/// Modules that may not name `cli`/`args` but do.
fn cli_users(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    edges
        .iter()
        .filter(|(m, to)| !may_name_the_cli(m) && (to.contains("cli") || to.contains("args")))
        .map(|(m, _)| m.clone())
        .collect()
}

/// Modules of the pure core that name a layer above it (a client, printing, flags, commands):
/// `core` takes plain data in and gives plain data out, so it is unit-tested on fixtures alone.
fn impure_core(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    const ABOVE: [&str; 6] = ["kube", "registry", "output", "commands", "args", "cli"];
    edges
        .iter()
        .filter(|(m, to)| {
            (m.as_str() == "core" || m.starts_with("core::"))
                && to.iter().any(|t| ABOVE.iter().any(|a| related(t, a)))
        })
        .map(|(m, _)| m.clone())
        .collect()
}

/// Modules of one I/O lane (`kube`, `registry`) that name the other: data both need belongs in
/// `core`, and a command passes one lane's results to the other.
fn crossed_lanes(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    const LANES: [(&str, &str); 2] = [("kube", "registry"), ("registry", "kube")];
    edges
        .iter()
        .filter(|(m, to)| {
            LANES
                .iter()
                .any(|(lane, other)| related(m, lane) && to.iter().any(|t| related(t, other)))
        })
        .map(|(m, _)| m.clone())
        .collect()
}

/// Whether `line` starts a function definition (not a declaration ending in `;`).
fn starts_fn(line: &str) -> bool {
    let mut t = line.trim_start();
    if let Some(rest) = t.strip_prefix("pub") {
        t = rest.trim_start();
        if t.starts_with('(') {
            t = t.split_once(')').map(|(_, r)| r).unwrap_or("").trim_start();
        }
    }
    for kw in ["async", "const", "unsafe"] {
        if let Some(rest) = t.strip_prefix(kw).filter(|r| r.starts_with(' ')) {
            t = rest.trim_start();
        }
    }
    t.starts_with("fn ") && !line.trim_end().ends_with(';')
}

/// `{` minus `}` on a line, outside string and char literals.
fn brace_balance(line: &str) -> i64 {
    let (mut depth, mut in_str) = (0, false);
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'\'' if !in_str && b.get(i + 2) == Some(&b'\'') => i += 2,
            b'{' if !in_str => depth += 1,
            b'}' if !in_str => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    depth
}

/// (lines, "file:line name") of every judged function longer than `max`.
fn long_functions(rel: &str, text: &str, max: usize) -> Vec<(usize, String)> {
    let code = judged_code(text);
    let lines: Vec<&str> = code.lines().collect();
    let mut out = vec![];
    for (n, line) in lines.iter().enumerate() {
        if !starts_fn(line) {
            continue;
        }
        let (mut depth, mut started) = (0i64, false);
        for (k, l) in lines.iter().enumerate().skip(n) {
            depth += brace_balance(l);
            started |= l.contains('{');
            if started && depth <= 0 {
                let len = k - n + 1;
                if len > max {
                    let name = line
                        .split("fn ")
                        .nth(1)
                        .unwrap_or("")
                        .split(['(', '<'])
                        .next();
                    out.push((len, format!("{rel}:{} {}", n + 1, name.unwrap_or(""))));
                }
                break;
            }
        }
    }
    out
}

fn read_tree(dir: &Path, root: &Path, out: &mut BTreeMap<String, (String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            read_tree(&p, root, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let rel = p
                .strip_prefix(root)
                .expect("under src")
                .to_string_lossy()
                .to_string();
            let text = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            out.insert(module_path(&rel), (rel, text));
        }
    }
}

fn source_tree() -> BTreeMap<String, (String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    read_tree(&src, &src, &mut files);
    assert!(
        files.contains_key("commands::pin") && files.contains_key("lib"),
        "the source tree was not found under {}",
        src.display()
    );
    files
}

fn texts(files: &BTreeMap<String, (String, String)>) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(m, (_, t))| (m.clone(), t.clone()))
        .collect()
}

#[test]
fn no_module_cycles() {
    let found = cycles(&edges(&texts(&source_tree())));
    assert!(found.is_empty(), "module cycles: {found:?}");
}

#[test]
fn only_the_command_layer_names_cli_or_args() {
    let users = cli_users(&edges(&texts(&source_tree())));
    assert!(
        users.is_empty(),
        "modules below commands/ name cli or args (turn the flags into a ready object in args.rs \
         and pass that down instead): {users:?}"
    );
}

#[test]
fn the_core_names_no_layer_above_it() {
    let impure = impure_core(&edges(&texts(&source_tree())));
    assert!(
        impure.is_empty(),
        "modules of core/ name kube, registry, output, commands, args or cli (move the type they \
         need into core, or the I/O out of core): {impure:?}"
    );
}

#[test]
fn kube_and_registry_do_not_name_each_other() {
    let crossed = crossed_lanes(&edges(&texts(&source_tree())));
    assert!(
        crossed.is_empty(),
        "kube/ and registry/ name each other (move the shared type into core): {crossed:?}"
    );
}

#[test]
fn no_function_over_100_lines() {
    let mut long = vec![];
    for (rel, text) in source_tree().values() {
        long.extend(long_functions(rel, text, MAX_FN_LINES));
    }
    long.sort();
    // "registry/mod.rs:444 resolve_uncached" -> "registry/mod.rs resolve_uncached"
    let key = |w: &str| {
        let (file, name) = w.split_once(' ').unwrap_or((w, ""));
        format!("{} {name}", file.rsplit_once(':').map_or(file, |(f, _)| f))
    };
    let new: Vec<_> = long
        .iter()
        .filter(|(_, w)| !KNOWN_LONG.iter().any(|(k, _)| *k == key(w)))
        .collect();
    assert!(
        new.is_empty(),
        "functions over {MAX_FN_LINES} lines (split them): {new:?}"
    );
    let stale: Vec<_> = KNOWN_LONG
        .iter()
        .filter(|(k, _)| !long.iter().any(|(_, w)| key(w) == *k))
        .collect();
    assert!(
        stale.is_empty(),
        "no longer over {MAX_FN_LINES} lines: remove them from KNOWN_LONG: {stale:?}"
    );
}

// The checks themselves, on synthetic trees with one violation each.

fn tree(files: &[(&str, &str)]) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(rel, text)| (module_path(rel), text.to_string()))
        .collect()
}

#[test]
fn checker_finds_a_cycle_through_use_inline_paths_and_super() {
    let t = tree(&[
        ("a.rs", "use crate::b::{self, X};\n"),
        (
            "b/mod.rs",
            "fn f() { crate::c::e::g() } // crate::a::x in a comment\n",
        ),
        ("c/d.rs", "use super::e::Y;\n"),
        ("c/e.rs", "fn g() { let s = \"//\"; crate::c::d::h() }\n"),
    ]);
    // a -> b -> c::e -> c::d -> c::e: one cycle c::d <-> c::e (through super:: and an inline
    // path after a "//" inside a string); the comment's crate::a makes no edge.
    let found = cycles(&edges(&t));
    assert_eq!(found, vec![vec!["c::d", "c::e"]], "{:?}", edges(&t));
    let t = tree(&[
        ("a.rs", "use crate::b::{self, X};\n"),
        ("b.rs", "use crate::{a::Y, c};\n"),
        ("c.rs", ""),
    ]);
    assert_eq!(cycles(&edges(&t)), vec![vec!["a", "b"]], "{:?}", edges(&t));
    // Test code is not judged: the same reference after #[cfg(test)] makes no edge.
    let t = tree(&[
        ("a.rs", "use crate::b::X;\n"),
        ("b.rs", "#[cfg(test)]\nmod tests { use crate::a::Y; }\n"),
    ]);
    assert!(cycles(&edges(&t)).is_empty());
}

#[test]
fn checker_finds_a_lower_layer_naming_cli_or_args() {
    let t = tree(&[
        ("cli.rs", ""),
        ("args.rs", "use crate::kube::client::ConnectOptions;\n"),
        ("commands/pin.rs", "use crate::args::GlobalArgs;\n"),
        ("kube/client.rs", "fn f(g: &crate::args::GlobalArgs) {}\n"),
        ("output.rs", "use crate::cli::{Cli, Command};\n"),
    ]);
    assert_eq!(cli_users(&edges(&t)), vec!["kube::client", "output"]);
}

#[test]
fn checker_finds_a_core_module_naming_a_layer_above() {
    let t = tree(&[
        ("core/mod.rs", "pub mod plan;\npub mod names;\n"),
        (
            "core/plan.rs",
            "use crate::registry::Resolved;\nuse crate::core::names::X;\n",
        ),
        ("core/names.rs", "pub const X: u8 = 1;\n"),
        ("registry/mod.rs", "use crate::core::plan::Plan;\n"),
        ("kube/client.rs", "use crate::output::Table;\n"),
        ("output.rs", ""),
    ]);
    assert_eq!(impure_core(&edges(&t)), vec!["core::plan"]);
}

#[test]
fn checker_finds_one_io_lane_naming_the_other() {
    let t = tree(&[
        (
            "kube/client.rs",
            "fn f() { let c = crate::registry::PullSecretCredentials::default(); }\n",
        ),
        ("kube/mod.rs", "pub mod client;\n"),
        (
            "registry/mod.rs",
            "use crate::core::credentials::Credential;\n",
        ),
        ("core/credentials.rs", ""),
    ]);
    assert_eq!(crossed_lanes(&edges(&t)), vec!["kube::client"]);
}

#[test]
fn checker_measures_functions_outside_tests() {
    let body = |n: usize| "    let x = \"}\";\n".repeat(n);
    let text = format!(
        "pub(crate) async fn long() {{\n{}}}\nfn short() {{\n{}}}\nfn decl();\n#[cfg(test)]\nfn in_tests() {{\n{}}}\n",
        body(99),
        body(10),
        body(200)
    );
    let long = long_functions("x.rs", &text, MAX_FN_LINES);
    assert_eq!(long, vec![(101, "x.rs:1 long".to_string())]);
    assert!(long_functions("x.rs", &text, 101).is_empty());
}
