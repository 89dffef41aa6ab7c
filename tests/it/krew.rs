//! The krew manifest, checked the way krew checks it, since krew itself cannot be installed here.
//!
//! `krew_violations` re-implements krew's published rules (`internal/index/validation` and the
//! `validate-krew-manifest` command the krew index runs on every submission): apiVersion and kind,
//! a safe plugin name that matches the file name, a one-line short description, a semantic
//! version with a leading `v`, and per platform a uri, a 64-lowercase-hex sha256, a bin, well-formed
//! `files`, a selector on `os`/`arch` only that matches a platform krew knows, and no two platforms
//! selecting the same os/arch. `project_violations` adds what this project promises on top: the five
//! platforms, https release URLs named after the archives `scripts/release` writes, `.zip` exactly
//! for Windows, the binary and LICENSE installed, a short description krew search shows whole
//! (at most 50 characters), short caveats that name the Houston prerequisite, and a placeholder
//! hash only where the header says so. The version is Cargo's for what `scripts/release` renders
//! now; the committed manifests are the custom index, which follows the last release, so they are
//! checked against the version they carry (URIs and archive names of that version), not Cargo's.
//!
//! The validator runs on the committed `krew.yaml`, the custom-index copy and the template
//! rendered with dummy values; a test breaks each rule once to show the validator can fail. Then
//! `scripts/release` packages the test build of the binary and the test checks the archive against
//! the manifest it rendered: the bin at the archive root, every `files` entry present, and the
//! manifest's sha256 equal to the archive's. None of this needs the test bed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::process::Command;

use crate::support::{repo_root, Out};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The platforms this project ships, as krew's selectors name them.
const PLATFORMS: [(&str, &str); 5] = [
    ("linux", "amd64"),
    ("linux", "arm64"),
    ("darwin", "amd64"),
    ("darwin", "arm64"),
    ("windows", "amd64"),
];

/// The os/arch pairs `validate-krew-manifest` accepts: a selector must match one of them.
const KREW_PLATFORMS: [(&str, &str); 11] = [
    ("windows", "386"),
    ("windows", "amd64"),
    ("windows", "arm64"),
    ("linux", "386"),
    ("linux", "amd64"),
    ("linux", "arm"),
    ("linux", "arm64"),
    ("linux", "ppc64le"),
    ("darwin", "386"),
    ("darwin", "amd64"),
    ("darwin", "arm64"),
];

/// Names Windows reserves; krew refuses them as plugin names.
const WINDOWS_FORBIDDEN: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

const PLACEHOLDER: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const BIN: &str = "kubectl-astro_sha";

fn version() -> String {
    format!("v{}", env!("CARGO_PKG_VERSION"))
}

/// Where `scripts/release` says the archives of this version are downloaded from by default.
fn release_base_url() -> String {
    release_base_url_of(&version())
}

/// The GitHub release download folder of `version`.
fn release_base_url_of(version: &str) -> String {
    format!(
        "{}/releases/download/{version}",
        env!("CARGO_PKG_REPOSITORY").trim_end_matches('/')
    )
}

/// The release a committed manifest describes: the version it carries (the custom index
/// follows the last release, whatever Cargo.toml says meanwhile) and that release's URL.
fn committed_release(text: &str) -> (String, String) {
    let version = str_at(&parse(text), &["spec", "version"])
        .unwrap_or_else(|| panic!("no spec.version in\n{text}"))
        .to_string();
    assert!(
        is_krew_semver(&version),
        "committed manifest version {version:?} is not v + a semantic version"
    );
    let base = release_base_url_of(&version);
    (version, base)
}

fn archive_name(version: &str, os: &str, arch: &str) -> String {
    let ext = if os == "windows" { "zip" } else { "tar.gz" };
    format!("{BIN}-{version}-{os}-{arch}.{ext}")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn parse(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("manifest is not YAML: {e}\n{text}"))
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// krew's `^[\w-]+$` (Go's `\w` is ASCII letters, digits and `_`) minus Windows device names.
fn is_safe_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && !WINDOWS_FORBIDDEN
            .iter()
            .any(|f| f.eq_ignore_ascii_case(name))
}

/// Semantic Versioning 2.0 with the leading `v` krew insists on (krew parses it with
/// `k8s.io/apimachinery`'s `ParseSemantic`, which follows the spec strictly).
fn is_krew_semver(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else {
        return false;
    };
    let (rest, build) = match rest.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (rest, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let numeric = |p: &str| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0'))
    };
    let ident =
        |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| numeric(p))
        && pre.is_none_or(|p| {
            p.split('.')
                .all(|i| ident(i) && (!i.bytes().all(|b| b.is_ascii_digit()) || numeric(i)))
        })
        && build.is_none_or(|b| b.split('.').all(ident))
}

/// Go's `filepath.Clean` on slash paths: krew refuses a `files.to` that is not already clean.
fn go_clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = vec![];
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." if parts.last().is_some_and(|l| *l != "..") => {
                parts.pop();
            }
            ".." if rooted => {}
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// The os/arch a krew selector picks among `KREW_PLATFORMS` (matchLabels and the `In`/`NotIn`/
/// `Exists`/`DoesNotExist` expressions of a Kubernetes label selector).
fn selected(selector: &Value) -> Vec<(&'static str, &'static str)> {
    KREW_PLATFORMS
        .iter()
        .copied()
        .filter(|(os, arch)| {
            let label = |k: &str| match k {
                "os" => Some(*os),
                "arch" => Some(*arch),
                _ => None,
            };
            let labels_ok = selector
                .get("matchLabels")
                .and_then(Value::as_object)
                .is_none_or(|m| {
                    m.iter()
                        .all(|(k, v)| label(k).is_some_and(|l| Some(l) == v.as_str()))
                });
            let exprs_ok = selector
                .get("matchExpressions")
                .and_then(Value::as_array)
                .is_none_or(|es| {
                    es.iter().all(|e| {
                        let l = e["key"].as_str().and_then(label);
                        let vals: Vec<&str> = e["values"]
                            .as_array()
                            .map(|a| a.iter().filter_map(Value::as_str).collect())
                            .unwrap_or_default();
                        match e["operator"].as_str() {
                            Some("In") => l.is_some_and(|l| vals.contains(&l)),
                            Some("NotIn") => l.is_none_or(|l| !vals.contains(&l)),
                            Some("Exists") => l.is_some(),
                            Some("DoesNotExist") => l.is_none(),
                            _ => false,
                        }
                    })
                });
            labels_ok && exprs_ok
        })
        .collect()
}

/// Every way `text` breaks krew's own rules. `file_name` is the manifest's file name when it
/// sits in an index (`plugins/<name>.yaml`), where krew requires the name to match.
fn krew_violations(text: &str, file_name: Option<&str>) -> Vec<String> {
    let m = parse(text);
    let mut errs = vec![];
    if m["apiVersion"] != "krew.googlecontainertools.github.com/v1alpha2" {
        errs.push(format!(
            "apiVersion {} is not krew's v1alpha2",
            m["apiVersion"]
        ));
    }
    if m["kind"] != "Plugin" {
        errs.push(format!("kind {} is not Plugin", m["kind"]));
    }
    let name = str_at(&m, &["metadata", "name"]).unwrap_or("");
    if !is_safe_plugin_name(name) {
        errs.push(format!(
            "plugin name {name:?} is not allowed (^[\\w-]+$, no device names)"
        ));
    }
    if let Some(f) = file_name {
        if f != format!("{name}.yaml") {
            errs.push(format!(
                "file {f} must be named after the plugin: {name}.yaml"
            ));
        }
    }
    let spec = &m["spec"];
    match spec["shortDescription"].as_str() {
        Some(s) if !s.is_empty() && !s.contains(['\r', '\n']) => {}
        other => errs.push(format!(
            "shortDescription must be one non-empty line: {other:?}"
        )),
    }
    match spec["version"].as_str() {
        Some(v) if is_krew_semver(v) => {}
        other => errs.push(format!(
            "version {other:?} is not a semantic version with a leading v"
        )),
    }
    let platforms = spec["platforms"].as_array().cloned().unwrap_or_default();
    if platforms.is_empty() {
        errs.push("no platforms".into());
    }
    let mut picked: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    for (i, p) in platforms.iter().enumerate() {
        let at = format!("platforms[{i}]");
        if p["uri"].as_str().is_none_or(str::is_empty) {
            errs.push(format!("{at}: uri has to be set"));
        }
        match p["sha256"].as_str() {
            Some(s) if is_sha256(s) => {}
            other => errs.push(format!(
                "{at}: sha256 {other:?} must be 64 lowercase hex digits"
            )),
        }
        if p["bin"].as_str().is_none_or(str::is_empty) {
            errs.push(format!("{at}: bin has to be set"));
        }
        if let Some(files) = p.get("files").filter(|f| !f.is_null()) {
            match files.as_array() {
                Some(fs) if !fs.is_empty() => {
                    for f in fs {
                        let from = f["from"].as_str().unwrap_or("");
                        let to = f["to"].as_str().unwrap_or("");
                        if from.is_empty() || to.is_empty() {
                            errs.push(format!("{at}: files entry needs from and to: {f}"));
                        }
                        if to != go_clean(to) {
                            errs.push(format!("{at}: files `to` {to:?} is not a clean path"));
                        }
                    }
                }
                _ => errs.push(format!("{at}: files has to be unspecified or non-empty")),
            }
        }
        let sel = &p["selector"];
        let labels = sel.get("matchLabels").filter(|v| !v.is_null());
        let exprs = sel.get("matchExpressions").filter(|v| !v.is_null());
        if sel.is_null() || (labels.is_none() && exprs.is_none()) {
            errs.push(format!("{at}: selector must be set and not empty"));
            continue;
        }
        if labels.is_some_and(|l| l.as_object().is_none_or(|o| o.is_empty())) {
            errs.push(format!("{at}: matchLabels specified but empty"));
        }
        if exprs.is_some_and(|e| e.as_array().is_none_or(|a| a.is_empty())) {
            errs.push(format!("{at}: matchExpressions specified but empty"));
        }
        let mut keys: Vec<String> = labels
            .and_then(Value::as_object)
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        keys.extend(
            exprs
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|e| e["key"].as_str().unwrap_or("").to_string())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        );
        for k in keys.iter().filter(|k| *k != "os" && *k != "arch") {
            errs.push(format!(
                "{at}: selector key {k:?} not supported (only os and arch)"
            ));
        }
        let s = selected(sel);
        if s.is_empty() {
            errs.push(format!(
                "{at}: selector {sel} matches no platform krew supports"
            ));
        }
        for pair in s {
            picked.entry(pair).or_default().push(i);
        }
    }
    for ((os, arch), idx) in picked {
        if idx.len() > 1 {
            errs.push(format!(
                "platforms {idx:?} have overlapping selectors for {os}/{arch}"
            ));
        }
    }
    errs
}

/// Header line naming the platforms rendered with a placeholder hash.
fn placeholder_header(text: &str) -> BTreeSet<String> {
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .find_map(|l| l.strip_prefix("# placeholder-platforms:"))
        .map(|s| s.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

/// `krew search` cuts a short description at 50 characters; krew-index reviewers ask for <= 50.
const MAX_SHORT_DESCRIPTION: usize = 50;
/// krew prints caveats on every install; they are not documentation (RBAC and completion live
/// in the README).
const MAX_CAVEAT_LINES: usize = 8;

/// What this project promises beyond krew's rules, for a manifest of release `version`.
fn project_violations(text: &str, version: &str, base_url: &str) -> Vec<String> {
    let m = parse(text);
    let mut errs = vec![];
    let spec = &m["spec"];
    if m["metadata"]["name"] != "astro-sha" {
        errs.push(format!(
            "plugin name {} is not astro-sha",
            m["metadata"]["name"]
        ));
    }
    if spec["version"].as_str() != Some(version) {
        errs.push(format!(
            "version {} is not the expected {version}",
            spec["version"]
        ));
    }
    let short = spec["shortDescription"].as_str().unwrap_or("");
    if short.chars().count() > MAX_SHORT_DESCRIPTION {
        errs.push(format!(
            "shortDescription is {} characters, more than {MAX_SHORT_DESCRIPTION}: {short:?}",
            short.chars().count()
        ));
    }
    if spec["homepage"].as_str() != Some(env!("CARGO_PKG_HOMEPAGE")) {
        errs.push(format!("homepage {} is not Cargo's", spec["homepage"]));
    }
    let description = spec["description"].as_str().unwrap_or("");
    if description.trim().is_empty() {
        errs.push("description missing".into());
    }
    if description.split_whitespace().any(|w| w.starts_with("--")) {
        errs.push("description lists flags; say what the plugin does instead".into());
    }
    let caveats = spec["caveats"].as_str().unwrap_or("");
    for word in ["Houston", "customImageSha"] {
        if !caveats.contains(word) {
            errs.push(format!("caveats do not mention {word}"));
        }
    }
    if caveats.lines().count() > MAX_CAVEAT_LINES {
        errs.push(format!(
            "caveats run {} lines, more than {MAX_CAVEAT_LINES}: keep the prerequisite, move the rest to the README",
            caveats.lines().count()
        ));
    }
    let platforms = spec["platforms"].as_array().cloned().unwrap_or_default();
    let mut seen = BTreeSet::new();
    let mut zero = BTreeSet::new();
    for (i, p) in platforms.iter().enumerate() {
        let at = format!("platforms[{i}]");
        let labels = &p["selector"]["matchLabels"];
        let (Some(os), Some(arch)) = (labels["os"].as_str(), labels["arch"].as_str()) else {
            errs.push(format!(
                "{at}: selector must name os and arch in matchLabels"
            ));
            continue;
        };
        if !seen.insert((os.to_string(), arch.to_string())) {
            errs.push(format!("{at}: {os}/{arch} listed twice"));
        }
        let windows = os == "windows";
        let bin = if windows {
            format!("{BIN}.exe")
        } else {
            BIN.to_string()
        };
        if p["bin"].as_str() != Some(bin.as_str()) {
            errs.push(format!("{at}: bin {} should be {bin}", p["bin"]));
        }
        let uri = p["uri"].as_str().unwrap_or("");
        if !uri.starts_with("https://") {
            errs.push(format!("{at}: uri {uri} is not https"));
        }
        let (want_ext, wrong_ext) = if windows {
            (".zip", ".tar.gz")
        } else {
            (".tar.gz", ".zip")
        };
        if !uri.ends_with(want_ext) || uri.ends_with(wrong_ext) {
            errs.push(format!(
                "{at}: uri {uri} should be a {want_ext} archive for {os}"
            ));
        }
        let want_uri = format!("{base_url}/{}", archive_name(version, os, arch));
        if uri != want_uri {
            errs.push(format!("{at}: uri {uri} should be {want_uri}"));
        }
        let froms: Vec<&str> = p["files"]
            .as_array()
            .map(|a| a.iter().filter_map(|f| f["from"].as_str()).collect())
            .unwrap_or_default();
        for needed in [bin.as_str(), "LICENSE"] {
            if !froms.contains(&needed) {
                errs.push(format!("{at}: files do not install {needed}"));
            }
        }
        if p["sha256"] == PLACEHOLDER {
            zero.insert(format!("{os}/{arch}"));
        }
    }
    let want: BTreeSet<(String, String)> = PLATFORMS
        .iter()
        .map(|(o, a)| (o.to_string(), a.to_string()))
        .collect();
    if seen != want {
        errs.push(format!("platforms {seen:?} are not exactly {want:?}"));
    }
    let declared = placeholder_header(text);
    if declared != zero {
        errs.push(format!(
            "header declares placeholder hashes for {declared:?} but the zero hashes are {zero:?}"
        ));
    }
    if !zero.is_empty()
        && !text
            .lines()
            .take_while(|l| l.starts_with('#'))
            .any(|l| l.contains("UNRELEASED"))
    {
        errs.push("placeholder hashes without an UNRELEASED header".into());
    }
    errs
}

/// Valid for what `scripts/release` renders now: Cargo's version.
fn assert_valid(text: &str, file_name: Option<&str>, base_url: &str, what: &str) {
    assert_valid_for(text, file_name, &version(), base_url, what);
}

fn assert_valid_for(
    text: &str,
    file_name: Option<&str>,
    version: &str,
    base_url: &str,
    what: &str,
) {
    let mut errs = krew_violations(text, file_name);
    errs.extend(project_violations(text, version, base_url));
    assert!(
        errs.is_empty(),
        "{what} fails validation:\n  {}",
        errs.join("\n  ")
    );
}

/// The template with its placeholders filled for Cargo's version (without the header).
fn render_template(base_url: &str, sha: impl Fn(&str, &str) -> String) -> String {
    render_template_for(&version(), base_url, sha)
}

/// The template with its placeholders filled, as scripts/release does (without the header).
fn render_template_for(
    version: &str,
    base_url: &str,
    sha: impl Fn(&str, &str) -> String,
) -> String {
    let template = read(&repo_root().join("plugin-manifest/astro-sha.yaml.tmpl"));
    let mut out: String = template
        .lines()
        .filter(|l| !l.starts_with("##"))
        .map(|l| format!("{l}\n"))
        .collect();
    out = out
        .replace("{{VERSION}}", version)
        .replace("{{BASE_URL}}", base_url);
    for (os, arch) in PLATFORMS {
        let key = format!(
            "{{{{SHA256_{}_{}}}}}",
            os.to_uppercase(),
            arch.to_uppercase()
        );
        out = out.replace(&key, &sha(os, arch));
    }
    assert!(
        !out.contains("{{"),
        "template has a placeholder nobody fills:\n{out}"
    );
    out
}

fn dummy_sha(os: &str, arch: &str) -> String {
    sha256_hex(format!("{os}/{arch}").as_bytes())
}

/// The manifest without its leading comment lines.
fn body(text: &str) -> String {
    text.lines()
        .skip_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn platform_sha(text: &str, os: &str, arch: &str) -> String {
    parse(text)["spec"]["platforms"]
        .as_array()
        .expect("platforms")
        .iter()
        .find(|p| {
            p["selector"]["matchLabels"]["os"] == os && p["selector"]["matchLabels"]["arch"] == arch
        })
        .and_then(|p| p["sha256"].as_str())
        .unwrap_or_else(|| panic!("no {os}/{arch} platform"))
        .to_string()
}

#[test]
fn committed_krew_yaml_passes_krew_validation() {
    let text = read(&repo_root().join("krew.yaml"));
    let (version, base) = committed_release(&text);
    assert_valid_for(&text, None, &version, &base, "krew.yaml");
}

/// The README's `kubectl krew index add astro-sha <repository>.git` works only if the repository
/// is itself a krew index: krew reads the manifests under `plugins/` at the root of the clone
/// (krew's `internal/index/indexscanner`: `<index>/plugins/*.yaml`, each named after its plugin).
#[test]
fn repository_is_the_custom_index_the_readme_adds() {
    let readme = read(&repo_root().join("README.md"));
    let repo = env!("CARGO_PKG_REPOSITORY").trim_end_matches('/');
    let add = format!("kubectl krew index add astro-sha {repo}.git");
    assert!(readme.contains(&add), "README lacks `{add}`");
    assert!(
        readme.contains("kubectl krew install astro-sha/astro-sha"),
        "README lacks the install line"
    );
    let plugins: Vec<String> = std::fs::read_dir(repo_root().join("plugins"))
        .expect("plugins/ at the repository root (the index krew clones)")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        plugins,
        ["astro-sha.yaml"],
        "plugins/ must hold exactly the plugin's manifest"
    );
}

/// krew-release-bot renders `.krew.yaml` on a release tag: it must be the same template.
#[test]
fn krew_release_bot_template_is_generated_from_the_template() {
    let run = release(&["bot-template"]);
    run.assert_code(0);
    assert_eq!(
        read(&repo_root().join(".krew.yaml")),
        run.stdout,
        "run `scripts/release bot-template > .krew.yaml`"
    );
    assert_eq!(
        run.stdout.matches("{{addURIAndSha").count(),
        PLATFORMS.len()
    );
    assert!(!run.stdout.contains("{{VERSION}}") && !run.stdout.contains("{{SHA256"));
}

#[test]
fn custom_index_copy_passes_and_is_krew_yaml() {
    let path = repo_root().join("plugins/astro-sha.yaml");
    let text = read(&path);
    let (version, base) = committed_release(&text);
    assert_valid_for(
        &text,
        Some("astro-sha.yaml"),
        &version,
        &base,
        "the custom-index copy",
    );
    assert_eq!(
        text,
        read(&repo_root().join("krew.yaml")),
        "index copy differs from krew.yaml"
    );
}

#[test]
fn template_rendered_with_dummy_values_passes() {
    let text = render_template(&release_base_url(), dummy_sha);
    assert_valid(
        &text,
        Some("astro-sha.yaml"),
        &release_base_url(),
        "the rendered template",
    );
    // Another base URL (a mirror inside an air-gapped network) lands in every uri.
    let mirror = "https://artifacts.example.corp/astro-sha";
    let text = render_template(mirror, dummy_sha);
    assert_valid(&text, None, mirror, "the template rendered for a mirror");
}

/// Editing the template without rendering the committed manifests again fails here: they must
/// be exactly the template rendered for the release they name (its version, URIs and archive
/// names, with whatever hashes they carry). Cargo's version is free to move on: the index follows
/// the last release, which the release workflow commits.
#[test]
fn committed_manifests_are_the_template_rendered_for_their_release() {
    let text = read(&repo_root().join("krew.yaml"));
    let (version, base) = committed_release(&text);
    let rendered = render_template_for(&version, &base, |os, arch| platform_sha(&text, os, arch));
    pretty_assertions::assert_eq!(
        body(&text),
        rendered,
        "krew.yaml is stale: run `scripts/release refresh --update-repo` (keeps its version and hashes)"
    );
}

/// `refresh` is how the committed manifests follow a template edit: it renders the template for
/// the version and hashes a manifest carries, so on the committed (unreleased) manifest it is a
/// no-op, and on a released manifest it keeps every real hash and its version, not Cargo's.
#[test]
fn refresh_keeps_the_release_a_manifest_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().to_str().expect("utf-8 path");
    let run = release(&["refresh", "--out", out]);
    run.assert_code(0);
    assert_eq!(
        read(&dir.path().join("krew.yaml")),
        read(&repo_root().join("krew.yaml")),
        "refresh of the committed manifest changed it"
    );

    // A released manifest of another version, every hash real.
    let other = "v0.0.7";
    let mut released = String::from("# krew Plugin manifest (a release)\n");
    released.push_str(&render_template_for(
        other,
        &release_base_url_of(other),
        dummy_sha,
    ));
    let from = dir.path().join("released.yaml");
    std::fs::write(&from, &released).expect("write");
    let again = dir.path().join("again");
    let run = release(&[
        "refresh",
        "--from",
        from.to_str().expect("utf-8"),
        "--out",
        again.to_str().expect("utf-8"),
    ]);
    run.assert_code(0);
    let text = read(&again.join("krew.yaml"));
    assert_eq!(body(&text), body(&released));
    assert!(!text.contains("UNRELEASED"), "{text}");
    assert_valid_for(
        &text,
        None,
        other,
        &release_base_url_of(other),
        "the refreshed release",
    );
}

/// The validator is only worth something if it can fail: break each rule once.
#[test]
fn validator_catches_each_broken_rule() {
    let good = render_template(&release_base_url(), dummy_sha);
    let win_sha = dummy_sha("windows", "amd64");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "plugin name",
            good.replacen("name: astro-sha", "name: astro.sha", 1),
            "plugin name",
        ),
        (
            "device name",
            good.replacen("name: astro-sha", "name: con", 1),
            "not allowed",
        ),
        (
            "version without v",
            good.replacen(&format!("version: {}", version()), "version: 0.1.0", 1),
            "version",
        ),
        (
            "short version",
            good.replacen(&format!("version: {}", version()), "version: v0.1", 1),
            "version",
        ),
        (
            "leading zero",
            good.replacen(&format!("version: {}", version()), "version: v01.1.0", 1),
            "version",
        ),
        (
            "other version",
            good.replacen(&format!("version: {}", version()), "version: v9.9.9", 1),
            "not the expected",
        ),
        (
            "long short description",
            replace_line(
                &good,
                "  shortDescription:",
                "  shortDescription: Pin Astro Private Cloud Airflow Deployments to Runtime image digests",
            ),
            "more than 50",
        ),
        (
            "long caveats",
            good.replacen(
                "  caveats: |\n",
                "  caveats: |\n    1\n    2\n    3\n    4\n    5\n    6\n",
                1,
            ),
            "caveats run",
        ),
        (
            "kind",
            good.replacen("kind: Plugin", "kind: Plugins", 1),
            "kind",
        ),
        (
            "apiVersion",
            good.replacen("v1alpha2", "v1alpha1", 1),
            "apiVersion",
        ),
        (
            "upper-case sha",
            good.replacen(&win_sha, &win_sha.to_uppercase(), 1),
            "sha256",
        ),
        (
            "short sha",
            good.replacen(&win_sha, &win_sha[1..], 1),
            "sha256",
        ),
        (
            "http uri",
            good.replacen("uri: https://", "uri: http://", 1),
            "https",
        ),
        (
            "windows tar.gz",
            good.replacen("windows-amd64.zip", "windows-amd64.tar.gz", 1),
            ".zip",
        ),
        (
            "linux zip",
            good.replacen("linux-amd64.tar.gz", "linux-amd64.zip", 1),
            ".tar.gz",
        ),
        (
            "no bin",
            good.replacen("    bin: kubectl-astro_sha\n", "", 1),
            "bin",
        ),
        (
            "windows bin",
            good.replacen("bin: kubectl-astro_sha.exe", "bin: kubectl-astro_sha", 1),
            "bin",
        ),
        (
            "no license",
            good.replacen("    - from: LICENSE\n      to: .\n", "", 1),
            "LICENSE",
        ),
        (
            "unclean to",
            good.replacen("      to: .\n", "      to: ./bin/\n", 1),
            "clean",
        ),
        (
            "selector key",
            good.replacen("        os: linux", "        distro: linux", 1),
            "selector key",
        ),
        (
            "unknown os",
            good.replacen("        os: darwin", "        os: solaris", 1),
            "matches no platform",
        ),
        (
            "duplicate platform",
            good.replacen("        arch: arm64", "        arch: amd64", 1),
            "overlapping",
        ),
        (
            "short description",
            replace_line(
                &good,
                "  shortDescription:",
                "  shortDescription: \"two\\nlines\"",
            ),
            "shortDescription",
        ),
        (
            "description with flags",
            good.replacen(
                "  description: |\n",
                "  description: |\n    Use --all-namespaces.\n",
                1,
            ),
            "flags",
        ),
        (
            "caveats without Houston",
            good.replace("Houston", "the platform"),
            "Houston",
        ),
        (
            "undeclared placeholder",
            good.replacen(&win_sha, PLACEHOLDER, 1),
            "placeholder",
        ),
        (
            "declared but real",
            format!("# UNRELEASED\n# placeholder-platforms: linux/amd64\n{good}"),
            "placeholder",
        ),
    ];
    for (what, text, needle) in cases {
        assert_ne!(text, good, "{what}: the mutation did not apply");
        let mut errs = krew_violations(&text, Some("astro-sha.yaml"));
        errs.extend(project_violations(&text, &version(), &release_base_url()));
        assert!(
            errs.iter().any(|e| e.contains(needle)),
            "{what}: expected a violation mentioning {needle:?}, got {errs:#?}"
        );
    }
    let errs = krew_violations(&good, Some("kubectl-astro_sha.yaml"));
    assert!(
        errs.iter().any(|e| e.contains("named after the plugin")),
        "{errs:?}"
    );
}

fn replace_line(text: &str, starting: &str, with: &str) -> String {
    text.lines()
        .map(|l| if l.starts_with(starting) { with } else { l })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn clean_paths_follow_go() {
    for (p, want) in [
        (".", "."),
        ("./bin/", "bin"),
        ("a/../b", "b"),
        ("", "."),
        ("../x", "../x"),
        ("/a/./b/", "/a/b"),
    ] {
        assert_eq!(go_clean(p), want, "{p}");
    }
}

#[test]
fn semver_rules_follow_krew() {
    for ok in [
        "v0.1.0",
        "v1.2.3-rc.1",
        "v1.2.3+build.5",
        "v10.20.30-alpha-1.0",
    ] {
        assert!(is_krew_semver(ok), "{ok}");
    }
    for bad in [
        "0.1.0",
        "v0.1",
        "v1.2.3.4",
        "v01.2.3",
        "v1.2.3-",
        "v1.2.3-01",
        "v1.2.x",
        "V1.2.3",
    ] {
        assert!(!is_krew_semver(bad), "{bad}");
    }
}

// ---- scripts/release ------------------------------------------------------------------------

/// The krew os/arch of the machine running the tests, or `None` if krew has no such platform.
fn host_platform() -> (&'static str, &'static str) {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    PLATFORMS
        .iter()
        .copied()
        .find(|p| *p == (os, arch))
        .unwrap_or_else(|| panic!("{os}/{arch} is not a platform this project releases"))
}

fn release(args: &[&str]) -> Out {
    let out = Command::new(repo_root().join("scripts/release"))
        .args(args)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run scripts/release");
    Out::from(out)
}

/// Regular files of a .tar.gz: name -> (mode, content). Enough of the ustar format for what
/// scripts/release writes; anything else (links, long names) fails the test.
fn untar_gz(path: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    let file = std::fs::File::open(path).expect("open archive");
    let mut tar = vec![];
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut tar)
        .expect("archive is gzip");
    let field = |h: &[u8], r: std::ops::Range<usize>| {
        String::from_utf8_lossy(&h[r])
            .trim_end_matches(['\0', ' '])
            .trim_start()
            .to_string()
    };
    let octal =
        |s: String| u64::from_str_radix(&s, 8).unwrap_or_else(|e| panic!("bad octal {s:?}: {e}"));
    let mut files = BTreeMap::new();
    let mut at = 0;
    while at + 512 <= tar.len() {
        let h = &tar[at..at + 512];
        if h.iter().all(|b| *b == 0) {
            break;
        }
        let name = field(h, 0..100);
        let mode = octal(field(h, 100..108)) as u32;
        let size = octal(field(h, 124..136)) as usize;
        let kind = h[156];
        assert!(
            kind == b'0' || kind == 0,
            "{name}: only regular files expected, type {kind}"
        );
        assert!(
            field(h, 345..500).is_empty(),
            "{name}: unexpected ustar prefix"
        );
        let start = at + 512;
        files.insert(name, (mode, tar[start..start + size].to_vec()));
        at = start + size.div_ceil(512) * 512;
    }
    files
}

fn sums(dir: &Path) -> BTreeMap<String, String> {
    read(&dir.join("SHA256SUMS"))
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(h, f)| (f.to_string(), h.to_string()))
        .collect()
}

/// (b): scripts/release packages the test build, and the manifest it renders describes exactly
/// that archive — the way `krew install --manifest krew.yaml --archive <archive>` would check it.
#[test]
fn release_script_packages_the_binary_the_manifest_describes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path();
    let bin = env!("CARGO_BIN_EXE_kubectl-astro_sha");
    let committed_before = read(&repo_root().join("krew.yaml"));
    let (os, arch) = host_platform();

    let run = release(&[
        "--bin",
        bin,
        "--out",
        out_dir.to_str().expect("utf-8 path"),
        "--allow-missing",
    ]);
    run.assert_code(0);

    let archive = out_dir.join(archive_name(&version(), os, arch));
    let bytes = std::fs::read(&archive)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", archive.display(), run.stderr));
    let archive_sha = sha256_hex(&bytes);

    // The archive: everything at its root, the binary byte-for-byte and executable.
    let files = untar_gz(&archive);
    let (mode, content) = files
        .get(BIN)
        .unwrap_or_else(|| panic!("no {BIN} at the archive root: {:?}", files.keys()));
    assert!(
        mode & 0o111 != 0,
        "{BIN} is not executable in the archive (mode {mode:o})"
    );
    assert!(
        sha256_hex(content) == sha256_hex(&std::fs::read(bin).expect("read binary")),
        "archived binary differs from {bin}"
    );
    assert_eq!(
        files["LICENSE"].1,
        std::fs::read(repo_root().join("LICENSE")).expect("LICENSE")
    );
    assert!(
        files["kubectl_complete-astro_sha"].0 & 0o111 != 0,
        "completion shim not executable"
    );
    assert_eq!(
        files.contains_key("README.md"),
        repo_root().join("README.md").exists(),
        "README.md goes into the archive exactly when the repository has one"
    );
    assert!(
        files.keys().all(|k| !k.contains('/')),
        "nested paths: {:?}",
        files.keys()
    );

    // SHA256SUMS and the rendered manifest carry the archive's real hash.
    assert_eq!(
        sums(out_dir).get(&archive_name(&version(), os, arch)),
        Some(&archive_sha)
    );
    let manifest = read(&out_dir.join("krew.yaml"));
    assert_eq!(
        platform_sha(&manifest, os, arch),
        archive_sha,
        "manifest sha256 != archive sha256"
    );
    assert_valid(
        &manifest,
        None,
        &release_base_url(),
        "the manifest scripts/release rendered",
    );
    assert_eq!(
        read(&out_dir.join("index/plugins/astro-sha.yaml")),
        manifest
    );
    let others: BTreeSet<String> = PLATFORMS
        .iter()
        .filter(|p| **p != (os, arch))
        .map(|(o, a)| format!("{o}/{a}"))
        .collect();
    assert_eq!(
        placeholder_header(&manifest),
        others,
        "placeholders must be exactly the unbuilt platforms"
    );

    // What krew does with the host platform: copy each `files` entry out of the archive, then
    // link `bin`. Every `from` must exist at the archive root, and `bin` must be among them.
    let platform = parse(&manifest)["spec"]["platforms"]
        .as_array()
        .expect("platforms")
        .iter()
        .find(|p| {
            p["selector"]["matchLabels"]["os"] == os && p["selector"]["matchLabels"]["arch"] == arch
        })
        .cloned()
        .expect("host platform");
    let mut installed = BTreeSet::new();
    for f in platform["files"].as_array().expect("files") {
        let from = f["from"].as_str().expect("from");
        assert!(
            files.contains_key(from),
            "files.from {from} is not in the archive"
        );
        assert_eq!(f["to"], ".");
        installed.insert(from.to_string());
    }
    assert!(
        installed.contains(platform["bin"].as_str().expect("bin")),
        "bin is not installed"
    );
    assert!(
        installed.contains("LICENSE"),
        "the krew index requires a license file"
    );

    // Without --allow-missing the same folder cannot be rendered: four platforms have no hash.
    let strict = release(&["render", "--out", out_dir.to_str().expect("utf-8")]);
    assert_eq!(strict.code, 1, "strict render must fail: {}", strict.stderr);
    for (o, a) in PLATFORMS.iter().filter(|p| **p != (os, arch)) {
        assert!(
            strict.stderr.contains(&archive_name(&version(), o, a)),
            "{}",
            strict.stderr
        );
    }

    assert_eq!(
        read(&repo_root().join("krew.yaml")),
        committed_before,
        "a local run touched krew.yaml"
    );
}

/// The release flow's last step: archives built elsewhere arrive as SHA256SUMS lines, and the
/// render takes them; a line that disagrees with an archive present here stops the release.
#[test]
fn render_takes_hashes_from_sha256sums_and_refuses_contradictions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path();
    let out = out_dir.to_str().expect("utf-8 path");
    // A small stand-in binary keeps this fast; the real one is packaged by the test above.
    let fake = out_dir.join("fake-binary");
    std::fs::write(&fake, b"#!/bin/sh\necho fake\n").expect("write fake binary");
    let (os, arch) = host_platform();
    release(&[
        "--bin",
        fake.to_str().expect("utf-8"),
        "--out",
        out,
        "--allow-missing",
    ])
    .assert_code(0);
    let host_archive = archive_name(&version(), os, arch);
    let host_sha = sha256_hex(&std::fs::read(out_dir.join(&host_archive)).expect("archive"));

    // Same input, same bytes: archives are reproducible, so a hash can be checked by rebuilding.
    std::fs::rename(out_dir.join(&host_archive), out_dir.join("first")).expect("rename");
    release(&[
        "--bin",
        fake.to_str().expect("utf-8"),
        "--out",
        out,
        "--allow-missing",
    ])
    .assert_code(0);
    assert_eq!(
        std::fs::read(out_dir.join("first")).expect("first"),
        std::fs::read(out_dir.join(&host_archive)).expect("second"),
        "packaging the same binary twice gave different archives"
    );

    let mut lines = read(&out_dir.join("SHA256SUMS"));
    for (o, a) in PLATFORMS.iter().filter(|p| **p != (os, arch)) {
        lines.push_str(&format!(
            "{}  {}\n",
            dummy_sha(o, a),
            archive_name(&version(), o, a)
        ));
    }
    std::fs::write(out_dir.join("SHA256SUMS"), &lines).expect("write SHA256SUMS");
    let run = release(&["render", "--out", out]);
    run.assert_code(0);
    let manifest = read(&out_dir.join("krew.yaml"));
    assert_valid(
        &manifest,
        None,
        &release_base_url(),
        "the fully rendered manifest",
    );
    assert!(
        placeholder_header(&manifest).is_empty(),
        "no placeholders expected:\n{manifest}"
    );
    assert!(!manifest.contains("UNRELEASED"));
    assert!(!manifest.contains(PLACEHOLDER));
    assert_eq!(platform_sha(&manifest, os, arch), host_sha);
    for (o, a) in PLATFORMS.iter().filter(|p| **p != (os, arch)) {
        assert_eq!(platform_sha(&manifest, o, a), dummy_sha(o, a));
    }

    // A mirror base URL for an air-gapped index; http is refused (krew downloads from it).
    let mirror = "https://artifacts.example.corp/astro-sha/v";
    release(&["render", "--out", out, "--base-url", mirror]).assert_code(0);
    assert_valid(
        &read(&out_dir.join("krew.yaml")),
        None,
        mirror,
        "the mirror rendering",
    );
    let http = release(&[
        "render",
        "--out",
        out,
        "--base-url",
        "http://artifacts.example.corp",
    ]);
    assert_eq!(http.code, 1, "{}", http.stderr);
    assert!(http.stderr.contains("https"), "{}", http.stderr);

    // The host archive no longer matches its SHA256SUMS line: which one is the release?
    let tampered = lines.replace(&host_sha, &dummy_sha("tampered", "x"));
    std::fs::write(out_dir.join("SHA256SUMS"), tampered).expect("write SHA256SUMS");
    let run = release(&["render", "--out", out]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains(&host_archive), "{}", run.stderr);
}

/// Placeholder output can never reach the checkout.
#[test]
fn update_repo_refuses_placeholders_from_allow_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let before = read(&repo_root().join("krew.yaml"));
    let run = release(&[
        "render",
        "--out",
        dir.path().to_str().expect("utf-8"),
        "--allow-missing",
        "--update-repo",
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("--update-repo"), "{}", run.stderr);
    assert_eq!(read(&repo_root().join("krew.yaml")), before);
}

/// The release workflow, parsed.
fn release_workflow() -> (String, Value) {
    let text = read(&repo_root().join(".github/workflows/release.yml"));
    let yaml = serde_yaml_ng::from_str(&text).expect("release.yml is YAML");
    (text, yaml)
}

/// The example in `scripts/release targets` builds exactly what the release workflow ships: a
/// release assembled by hand must not ship a glibc arm64 binary where CI ships a static musl one.
#[test]
fn targets_example_is_what_the_release_workflow_ships() {
    let run = release(&["targets"]);
    run.assert_code(0);
    let (_, wf) = release_workflow();
    let shipped: BTreeSet<String> = wf["jobs"]["build"]["strategy"]["matrix"]["include"]
        .as_array()
        .expect("build matrix")
        .iter()
        .map(|e| e["target"].as_str().expect("target").to_string())
        .collect();
    assert_eq!(shipped.len(), PLATFORMS.len(), "{shipped:?}");
    let example = run
        .stdout
        .split_once("Example for the whole release")
        .expect("an example section")
        .1;
    let mut words = example.split_whitespace();
    let mut in_example = BTreeSet::new();
    while let Some(w) = words.next() {
        if w == "--target" {
            in_example.insert(words.next().expect("a triple").to_string());
        }
    }
    assert_eq!(in_example, shipped, "{}", run.stdout);
    for t in &shipped {
        assert!(run.stdout.contains(t), "{t} missing from the targets table");
    }
}

/// What makes the first tag publish: each rule here broke (or was missing) in the workflow of
/// issue 22. The workflow is not run here; actionlint (.ci/run) checks its syntax.
#[test]
fn release_workflow_builds_on_prs_and_publishes_only_verified_tags() {
    let (text, wf) = release_workflow();
    let on = &wf["on"];
    assert!(on["push"]["tags"].is_array(), "tags trigger");
    assert!(on.get("pull_request").is_some(), "a PR builds the matrix");
    assert!(
        on.get("workflow_dispatch").is_some(),
        "a manual run builds it"
    );
    // The toolchain is pinned, to a version no older than rust-version.
    let pinned = wf["env"]["RUST_TOOLCHAIN"]
        .as_str()
        .expect("env.RUST_TOOLCHAIN");
    let num = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().expect("number")).collect() };
    assert_eq!(num(pinned).len(), 3, "pin a full version: {pinned}");
    assert!(
        num(pinned) >= num(env!("CARGO_PKG_RUST_VERSION")),
        "{pinned}"
    );
    assert!(text.contains(r#"rustup toolchain install "$RUST_TOOLCHAIN""#));
    // Static means no INTERP header (scripts/release-check), not `file` saying so.
    assert!(
        !text.contains("statically linked"),
        "`file` calls static-PIE \"static-pie linked\""
    );
    assert!(text.contains("scripts/release-check --target"));
    // krew installs every platform before anything is published, and publish needs it.
    let verify = wf["jobs"]["verify"]["steps"].to_string();
    assert!(verify.contains("kubectl krew install --manifest=") && verify.contains("KREW_ROOT="));
    let publish = &wf["jobs"]["publish"];
    assert_eq!(publish["needs"], "verify");
    let cond = publish["if"].as_str().expect("publish is conditional");
    assert!(
        cond.contains("github.event_name == 'push'") && cond.contains("github.ref_type == 'tag'")
    );
    let steps = publish["steps"].as_array().expect("steps");
    let step = |needle: &str| {
        steps
            .iter()
            .find(|s| s.to_string().contains(needle))
            .unwrap_or_else(|| panic!("no publish step with {needle}"))
    };
    assert!(step("gh release create")
        .to_string()
        .contains("--prerelease"));
    let index = step("plugins/astro-sha.yaml");
    assert!(index["if"]
        .as_str()
        .is_some_and(|c| c.contains("prerelease == 'false'")));
    let bot = step("krew-release-bot");
    let bot_if = bot["if"].as_str().expect("the bot is guarded");
    assert!(
        bot_if.contains("vars.KREW_INDEX_LISTED == 'true'"),
        "{bot_if}"
    );
    assert!(bot_if.contains("prerelease == 'false'"), "{bot_if}");
    assert!(
        bot["env"]["GITHUB_TOKEN"].is_string(),
        "the bot reads the release via the API"
    );
}

/// The README's install paths: the custom index, and offline the release's own manifest asset
/// (the committed one is a placeholder before the first release); the local check script.
#[test]
fn readme_offline_install_uses_the_release_manifest() {
    let readme = read(&repo_root().join("README.md"));
    assert!(
        readme.contains("kubectl krew install --manifest=astro-sha.yaml"),
        "README's offline install must use the release's astro-sha.yaml"
    );
    assert!(!readme.contains("--manifest=krew.yaml"));
    assert!(readme.contains("scripts/release-check"));
}

fn release_check(args: &[&str]) -> Out {
    let out = Command::new(repo_root().join("scripts/release-check"))
        .args(args)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run scripts/release-check");
    Out::from(out)
}

fn host_linux_triple(libc: &str) -> String {
    format!("{}-unknown-linux-{libc}", std::env::consts::ARCH)
}

/// scripts/release-check on the test build (glibc: no static requirement) passes every check;
/// the same binary packaged as the musl archive fails the static check by its INTERP header;
/// a SHA256SUMS line that does not match fails that check.
#[test]
fn release_check_checks_the_archive_and_refuses_a_dynamic_musl_binary() {
    if std::env::consts::OS != "linux" {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().to_str().expect("utf-8 path");
    let bin = env!("CARGO_BIN_EXE_kubectl-astro_sha");
    let gnu = host_linux_triple("gnu");
    let run = release_check(&["--target", &gnu, "--bin", bin, "--out", out]);
    run.assert_code(0);
    for check in ["layout", "SHA256SUMS", "manifest", "static", "runs"] {
        assert!(
            run.stdout.contains(&format!("ok   {check}:")),
            "{check}: {}",
            run.stdout
        );
    }
    assert!(
        run.stdout.contains(&format!("built for {gnu}")),
        "{}",
        run.stdout
    );

    // The same archive checked as the musl one (packaging it again would give the same bytes).
    let musl = host_linux_triple("musl");
    let run = release_check(&["--target", &musl, "--out", out, "--no-build"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("FAILED static") && run.stderr.contains("INTERP"),
        "{}",
        run.stderr
    );

    let sums = dir.path().join("SHA256SUMS");
    let text = read(&sums);
    let name = archive_name(&version(), host_platform().0, host_platform().1);
    let real = sha256_hex(&std::fs::read(dir.path().join(&name)).expect("archive"));
    std::fs::write(&sums, text.replace(&real, &dummy_sha("x", "y"))).expect("write");
    let run = release_check(&["--target", &musl, "--out", out, "--no-build"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stderr.contains("FAILED SHA256SUMS"), "{}", run.stderr);
}

/// A static-PIE executable (what Rust's x86_64 musl target links, and what `file` calls
/// "static-pie linked") passes the static check; a stand-in that is not the plugin then fails
/// `--version`. Built with the C compiler the crate's build needs anyway.
#[test]
fn release_check_takes_a_static_pie_and_runs_it() {
    if std::env::consts::OS != "linux" {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("stand_in.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\nint main(void) { puts(\"stand-in\"); return 0; }\n",
    )
    .expect("write C source");
    let exe = dir.path().join("stand-in");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let built = Command::new(&cc)
        .args(["-static-pie", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("run {cc}: {e}"));
    assert!(
        built.status.success(),
        "{cc} -static-pie: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let out = dir.path().join("dist");
    let run = release_check(&[
        "--target",
        &host_linux_triple("musl"),
        "--bin",
        exe.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains("ok   static: no INTERP program header"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("FAILED runs") && run.stderr.contains("stand-in"),
        "{}",
        run.stderr
    );
}

/// A cross target whose standard library is missing stops before cargo, saying how to add it.
#[test]
fn release_names_a_missing_rust_target() {
    let target = "x86_64-pc-windows-gnu";
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .expect("rustc --print sysroot");
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    if Path::new(&sysroot)
        .join("lib/rustlib")
        .join(target)
        .exists()
    {
        return; // installed here: nothing to refuse
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let run = release(&[
        "--target",
        target,
        "--out",
        dir.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("rustup target add {target}"))
            && run.stderr.contains("not installed"),
        "{}",
        run.stderr
    );
}

/// build.rs, compiled on its own and run the way cargo runs it: the commit it records is this
/// checkout's HEAD, and "unknown" for a copy of the crate inside some other git repository
/// (a crates.io tarball unpacked in a user's project), where HEAD is not this crate's commit.
#[test]
fn build_script_records_only_its_own_checkouts_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = dir.path().join("build-script");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let built = Command::new(&rustc)
        .args(["--edition", "2021", "-o"])
        .arg(&exe)
        .arg(repo_root().join("build.rs"))
        .output()
        .expect("run rustc");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let commit_of = |crate_dir: &Path| {
        let out = Command::new(&exe)
            .env("CARGO_MANIFEST_DIR", crate_dir)
            .env_remove("ASTRO_SHA_GIT_COMMIT")
            .current_dir(crate_dir)
            .output()
            .expect("run the build script");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("cargo:rustc-env=ASTRO_SHA_GIT_COMMIT="))
            .expect("a commit line")
            .to_string()
    };
    let git = |dir: &Path, args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    if let Ok(head) = Command::new("git")
        .arg("-C")
        .arg(repo_root())
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
    {
        if head.status.success() {
            let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
            assert_eq!(commit_of(&repo_root()), head, "this checkout's commit");
        }
    }
    // Another repository with a commit of its own, and the crate unpacked in a folder of it.
    let outer = dir.path().join("project");
    let unpacked = outer.join("vendor/kubectl-astro-sha");
    std::fs::create_dir_all(&unpacked).expect("mkdir");
    std::fs::write(unpacked.join("Cargo.toml"), "[package]\n").expect("write");
    git(&outer, &["init", "-q"]);
    git(&outer, &["add", "."]);
    git(
        &outer,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "outer",
        ],
    );
    assert_eq!(
        commit_of(&unpacked),
        "unknown",
        "a commit of the enclosing repository"
    );
}
