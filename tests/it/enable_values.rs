//! `enable --values`: golden files (input + expected output side by side in
//! tests/fixtures/values), idempotency, dry run, refusals and file handling. These run the real
//! binary on copies of the fixtures and need no cluster: every case that would otherwise read the
//! chart version from a cluster either passes --chart-version or points at an unreachable one.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pretty_assertions::assert_eq;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/values")
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// The binary with no reachable cluster (a kubeconfig path that does not exist).
fn run(dir: &Path, args: &[&str]) -> Run {
    // No terminal here: --yes answers the one confirmation every write asks (issue 10 §6).
    // --print writes nothing, so it asks nothing: --yes is refused with it.
    let yes: &[&str] = if args.contains(&"--print") {
        &[]
    } else {
        &["--yes"]
    };
    let o = Command::new(env!("CARGO_BIN_EXE_kubectl-astro_sha"))
        .args(args)
        .args(yes)
        .env("KUBECONFIG", dir.join("no-such-kubeconfig"))
        .env("NO_COLOR", "1")
        .env_remove("ASTRO_SHA_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run kubectl-astro_sha");
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A copy of a fixture in a fresh directory.
fn copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("values.yaml");
    std::fs::copy(fixtures().join(name), &p).expect("copy fixture");
    (dir, p)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).expect("read")
}

fn mtime(p: &Path) -> std::time::SystemTime {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .expect("mtime")
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Each golden case: input fixture, flags, expected fixture, and a phrase stderr must carry.
///
/// The schema per platform version (https://www.astronomer.io/docs/astro-private-cloud/create-deployment-sha): 0.37.x and 1.x read only the
/// flat `deployments.customImageShaEnabled`; APC 2.x reads only
/// `deployments.runtimeManagement.customImageSha.enabled` and "silently ignores any values.yaml
/// overrides that use the old key paths" (Astronomer's APC 2.x breaking-changes page), so on 2.x
/// a flat key is moved and before 2.x a nested key is only reported.
const GOLDEN: &[(&str, &[&str], &str, &str)] = &[
    (
        "no-flag.yaml",
        &["--chart-version", "0.37.4"],
        "no-flag.chart-0.37.expected.yaml",
        "schema: flat customImageShaEnabled (platform chart 0.37.4",
    ),
    (
        "no-flag.yaml",
        &["--chart-version", "1.1.0"],
        "no-flag.chart-0.37.expected.yaml",
        "schema: flat customImageShaEnabled (platform chart 1.1.0",
    ),
    (
        "no-flag.yaml",
        &["--chart-version", "2.1.0"],
        "no-flag.chart-2.1.expected.yaml",
        "schema: nested runtimeManagement.customImageSha.enabled (platform chart 2.1.0",
    ),
    (
        "nested-2x.yaml",
        &[],
        "nested-2x.expected.yaml",
        "the file has astronomer.houston.config.deployments.runtimeManagement, a key only APC 2.x reads",
    ),
    (
        "flat-present.yaml",
        &["--chart-version", "0.37.4"],
        "flat-present.expected.yaml",
        "schema: flat customImageShaEnabled (platform chart 0.37.4",
    ),
    (
        "flat-present.yaml",
        &["--chart-version", "2.1.0"],
        "flat-present.chart-2.1.expected.yaml",
        "moving astronomer.houston.config.deployments.customImageShaEnabled to astronomer.houston.config.deployments.runtimeManagement.customImageSha.enabled: APC 2.x silently ignores the old key",
    ),
    (
        "nested-present.yaml",
        &["--chart-version", "2.1.0"],
        "nested-present.expected.yaml",
        "schema: nested runtimeManagement.customImageSha.enabled (platform chart 2.1.0",
    ),
    (
        "nested-present.yaml",
        &["--chart-version", "0.37.4"],
        "nested-present.chart-0.37.expected.yaml",
        "is in the file, but platform chart 0.37.4 (0.37.x/1.x) reads only astronomer.houston.config.deployments.customImageShaEnabled",
    ),
    (
        "anchors-quoting.yaml",
        &[
            "--chart-version",
            "1.1.0",
            "--default-runtime-repository",
            "registry.corp:5000/astronomer/astro-runtime",
        ],
        "anchors-quoting.expected.yaml",
        "3 change(s)",
    ),
    (
        "no-astronomer.yaml",
        &[
            "--chart-version",
            "1.1.0",
            "--releases-configmap",
            "my-runtime-releases",
        ],
        "no-astronomer.expected.yaml",
        "2 change(s)",
    ),
];

#[test]
fn golden_files_then_idempotent() {
    for (input, flags, expected, phrase) in GOLDEN {
        let (dir, p) = copy(input);
        let path = p.to_str().expect("utf-8 path");
        let mut args = vec!["enable", "--values", path];
        args.extend_from_slice(flags);
        let r = run(dir.path(), &args);
        assert_eq!(r.code, 0, "{input}: {}", r.stderr);
        assert_eq!(
            read(&p),
            read(&fixtures().join(expected)),
            "{input} {flags:?}"
        );
        assert!(
            r.stderr.contains(phrase),
            "{input}: stderr lacks {phrase:?}:\n{}",
            r.stderr
        );
        // The diff is the plan: on stdout on a real run as on a dry run (issue 23), as
        // `kubectl diff` prints it; messages stay on stderr.
        assert!(
            r.stdout.starts_with(&format!("--- {path}")),
            "diff on stdout:\n{}",
            r.stdout
        );
        assert!(
            !r.stderr.contains(&format!("--- {path}")),
            "no diff on stderr: {}",
            r.stderr
        );
        assert_eq!(
            files_in(dir.path()),
            vec!["values.yaml"],
            "no temp file left"
        );

        // Second run: nothing to do, file not touched at all (same bytes, same mtime).
        let before = mtime(&p);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let r = run(dir.path(), &args);
        assert_eq!(r.code, 0, "{input} again: {}", r.stderr);
        assert!(
            r.stderr.contains("already enabled"),
            "{input} again:\n{}",
            r.stderr
        );
        assert_eq!(read(&p), read(&fixtures().join(expected)));
        assert_eq!(mtime(&p), before, "{input}: idempotent run must not write");
    }
}

/// A flat `customImageShaEnabled: true` is "already enabled" only for 0.37.x/1.x: APC 2.x
/// ignores it (https://www.astronomer.io/docs/astro-private-cloud/v-2-x/breaking-changes-removals). Without a version that cannot be told: refused.
#[test]
fn already_enabled_file_is_untouched() {
    let (dir, p) = copy("already-enabled.yaml");
    let before = mtime(&p);
    let r = run(
        dir.path(),
        &[
            "enable",
            "--values",
            p.to_str().unwrap(),
            "--chart-version",
            "1.1.0",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("already enabled"), "{}", r.stderr);
    assert_eq!(read(&p), read(&fixtures().join("already-enabled.yaml")));
    assert_eq!(mtime(&p), before);
    let r = run(dir.path(), &["enable", "--values", p.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--chart-version"), "{}", r.stderr);
    assert_eq!(mtime(&p), before);
}

#[test]
fn dry_run_prints_the_diff_and_writes_nothing() {
    let (dir, p) = copy("no-flag.yaml");
    let before = mtime(&p);
    let r = run(
        dir.path(),
        &[
            "enable",
            "--values",
            p.to_str().unwrap(),
            "--dry-run",
            "--chart-version",
            "0.37.4",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("+        customImageShaEnabled: true\n"),
        "{}",
        r.stdout
    );
    assert!(r
        .stdout
        .contains("+    runtimeReleasesConfigMapName: astro-runtime-base-images\n"));
    assert!(r.stderr.contains("dry run"), "{}", r.stderr);
    assert_eq!(read(&p), read(&fixtures().join("no-flag.yaml")));
    assert_eq!(mtime(&p), before);
    assert_eq!(files_in(dir.path()), vec!["values.yaml"]);
}

#[test]
fn json_report() {
    let (dir, p) = copy("flat-present.yaml");
    let r = run(
        dir.path(),
        &[
            "enable",
            "--values",
            p.to_str().unwrap(),
            "--dry-run",
            "--chart-version",
            "0.37.4",
            "-o",
            "json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    assert_eq!(v["schema"], "flat");
    assert_eq!(v["changed"], true);
    assert_eq!(v["written"], false);
    assert_eq!(
        v["changes"][0]["key"],
        "astronomer.houston.config.deployments.customImageShaEnabled"
    );
    // typed values (issue 23): a boolean, not the string "false"; strings without YAML quotes
    assert_eq!(v["changes"][0]["old"], false);
    assert_eq!(v["changes"][0]["new"], true);
    assert!(v["diff"]
        .as_str()
        .unwrap()
        .contains("+        customImageShaEnabled: true"));
    // On 2.x the flat key's removal is a change of its own, with no new value.
    let r = run(
        dir.path(),
        &[
            "enable",
            "--values",
            p.to_str().unwrap(),
            "--dry-run",
            "--chart-version",
            "2.1.0",
            "-o",
            "json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    assert_eq!(v["schema"], "nested");
    let removed: Vec<&serde_json::Value> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["key"] == "astronomer.houston.config.deployments.customImageShaEnabled")
        .collect();
    assert_eq!(removed.len(), 1, "{v}");
    assert_eq!(removed[0]["old"], false);
    assert_eq!(removed[0]["new"], serde_json::Value::Null);
    assert!(v["diff"]
        .as_str()
        .unwrap()
        .contains("-        customImageShaEnabled: false   # TODO: turn on after the import\n"));
}

#[test]
fn invalid_yaml_names_the_position_and_writes_nothing() {
    let (dir, p) = copy("invalid.yaml");
    let before = mtime(&p);
    let r = run(
        dir.path(),
        &[
            "enable",
            "--values",
            p.to_str().unwrap(),
            "--chart-version",
            "1.0.0",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("is not valid YAML at line 7, column 27"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("nothing was written"), "{}", r.stderr);
    assert_eq!(read(&p), read(&fixtures().join("invalid.yaml")));
    assert_eq!(mtime(&p), before);
    assert_eq!(files_in(dir.path()), vec!["values.yaml"]);
}

#[test]
fn refuses_values_of_another_chart() {
    let (dir, p) = copy("not-platform.yaml");
    let r = run(
        dir.path(),
        &[
            "enable",
            "--values",
            p.to_str().unwrap(),
            "--chart-version",
            "1.0.0",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("not the platform chart's values file"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("Airflow chart"), "{}", r.stderr);
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);
    assert_eq!(read(&p), read(&fixtures().join("not-platform.yaml")));
}

#[test]
fn refuses_an_edit_that_would_change_a_shared_anchor() {
    let (dir, p) = copy("shared-anchor.yaml");
    let r = run(
        dir.path(),
        &[
            "enable",
            "--values",
            p.to_str().unwrap(),
            "--chart-version",
            "1.0.0",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("would also change `astronomer.commander.deployments.customImageShaEnabled`"),
        "{}",
        r.stderr
    );
    assert_eq!(read(&p), read(&fixtures().join("shared-anchor.yaml")));
}

#[test]
fn permissions_are_kept_and_read_only_files_refused() {
    let (dir, p) = copy("no-flag.yaml");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    let r = run(
        dir.path(),
        &[
            "enable",
            "--values",
            p.to_str().unwrap(),
            "--chart-version",
            "0.37.4",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640, "mode kept across the atomic replace");

    let (dir, p) = copy("no-flag.yaml");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444)).unwrap();
    let r = run(
        dir.path(),
        &[
            "enable",
            "--values",
            p.to_str().unwrap(),
            "--chart-version",
            "0.37.4",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("cannot write"), "{}", r.stderr);
    assert!(r.stderr.contains("read-only"), "{}", r.stderr);
    assert_eq!(read(&p), read(&fixtures().join("no-flag.yaml")));
    assert_eq!(files_in(dir.path()), vec!["values.yaml"]);
}

#[test]
fn missing_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nope.yaml");
    let r = run(dir.path(), &["enable", "--values", p.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("cannot read"), "{}", r.stderr);
}

#[test]
fn print_shows_only_the_snippet() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(
        dir.path(),
        &["enable", "--print", "--chart-version", "2.1.0"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "astronomer:\n  houston:\n    runtimeReleasesConfigMapName: astro-runtime-base-images\n    config:\n      deployments:\n        runtimeManagement:\n          customImageSha:\n            enabled: true\n"
    );
    // With a values file: the snippet that fits it, and the file untouched.
    let (dir, p) = copy("flat-present.yaml");
    let before = mtime(&p);
    let r = run(
        dir.path(),
        &[
            "enable",
            "--print",
            "--values",
            p.to_str().unwrap(),
            "--no-releases-configmap",
            "--chart-version",
            "1.1.0",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "astronomer:\n  houston:\n    config:\n      deployments:\n        customImageShaEnabled: true\n"
    );
    assert_eq!(mtime(&p), before);
    // No version: the snippet would be a guess (each generation ignores the other's key).
    let r = run(dir.path(), &["enable", "--print"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(r.stderr.contains("--chart-version"), "{}", r.stderr);
}

/// With no --chart-version, no readable cluster and no 2.x-only key in the file, the version is
/// unknown: exit 2, the file untouched, the message names --chart-version and why the cluster did
/// not tell. No guess: APC 2.x ignores the flat key and 0.37.x/1.x ignore the nested one
/// (https://www.astronomer.io/docs/astro-private-cloud/v-2-x/breaking-changes-removals). A flat key already in the file decides nothing either.
#[test]
fn unknown_version_is_refused_and_the_file_untouched() {
    for fixture in ["no-flag.yaml", "flat-present.yaml"] {
        let (dir, p) = copy(fixture);
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n",
        )
        .unwrap();
        let before = mtime(&p);
        let o = Command::new(env!("CARGO_BIN_EXE_kubectl-astro_sha"))
            .args([
                "enable",
                "--values",
                p.to_str().unwrap(),
                "--request-timeout",
                "2s",
            ])
            .env("KUBECONFIG", &kubeconfig)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{fixture}: {stderr}");
        assert!(
            stderr.contains("cannot tell which platform chart version"),
            "{fixture}: {stderr}"
        );
        assert!(
            stderr.contains("the cluster did not tell"),
            "{fixture}: {stderr}"
        );
        assert!(
            stderr.contains("nothing was written"),
            "{fixture}: {stderr}"
        );
        assert!(
            stderr.contains("hint: pass --chart-version"),
            "{fixture}: {stderr}"
        );
        assert_eq!(read(&p), read(&fixtures().join(fixture)));
        assert_eq!(mtime(&p), before);
        assert_eq!(files_in(dir.path()), vec!["kubeconfig", "values.yaml"]);
    }
}

/// An explicit `false` with a comment was turned off on purpose (issue 23): the warning names the
/// key, the file and the comment, the question names the override, the JSON report lists it, and
/// the comment stays on the line (flat 0.37.x/1.x, nested 2.x). On 2.x a flat key is moved, and
/// its comment moves with it to the nested key's line.
#[test]
fn a_flag_turned_off_on_purpose_is_named_and_its_comment_kept() {
    const FLAT: &str = "global:\n  baseDomain: astro.example.com\nastronomer:\n  houston:\n    config:\n      deployments:\n        customImageShaEnabled: false  # turned off during the 2025 incident\n";
    const NESTED: &str = "global:\n  baseDomain: astro.example.com\nastronomer:\n  houston:\n    config:\n      deployments:\n        runtimeManagement:\n          customImageSha:\n            enabled: false  # turned off during the 2025 incident\n";
    for (text, chart, key, kept) in [
        (
            FLAT,
            "1.1.0",
            "astronomer.houston.config.deployments.customImageShaEnabled",
            true,
        ),
        (
            NESTED,
            "2.1.0",
            "astronomer.houston.config.deployments.runtimeManagement.customImageSha.enabled",
            true,
        ),
        // On 2.x the flat key moves, and its comment goes with it to the nested key's line.
        (
            FLAT,
            "2.1.0",
            "astronomer.houston.config.deployments.customImageShaEnabled",
            true,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("values.yaml");
        std::fs::write(&p, text).unwrap();
        let path = p.to_str().unwrap();
        let args = ["enable", "--values", path, "--chart-version", chart];
        let dry = run(
            dir.path(),
            &[&args[..], &["--dry-run", "-o", "json"]].concat(),
        );
        assert_eq!(dry.code, 0, "{}", dry.stderr);
        let v: serde_json::Value = serde_json::from_str(&dry.stdout).expect("json");
        assert_eq!(
            v["turnedOff"],
            serde_json::json!([{"key": key, "was": false, "comment": "turned off during the 2025 incident", "commentKept": kept}]),
            "{chart}: {v}"
        );
        let r = run(dir.path(), &args);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let warning = format!(
            "warning: {key} in {path} was turned off on purpose (false, \"# turned off during the 2025 incident\"); this turns the feature on."
        );
        assert!(r.stderr.contains(&warning), "{chart}: {}", r.stderr);
        let written = read(&p);
        assert!(r.stderr.contains("The comment is kept"), "{}", r.stderr);
        assert!(
            written.contains(": true  # turned off during the 2025 incident\n"),
            "{chart}: the comment stays on the flag's line:\n{written}"
        );
    }
    // No terminal and no --yes: the warning comes before the refusal, and the question names it.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("values.yaml");
    std::fs::write(&p, FLAT).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_kubectl-astro_sha"))
        .args([
            "enable",
            "--values",
            p.to_str().unwrap(),
            "--chart-version",
            "1.1.0",
        ])
        .env("KUBECONFIG", dir.path().join("none"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    let (warned, refused) = (
        stderr.find("was turned off on purpose").expect("warned"),
        stderr
            .find("customImageShaEnabled that was off on purpose?")
            .expect("asked"),
    );
    assert!(warned < refused, "{stderr}");
    assert_eq!(read(&p), FLAT);
}

/// `--print` changes nothing and has no file: its refusal speaks of the snippet, says nothing
/// was printed (not "written"), and names no file; with a version it says which schema it chose.
#[test]
fn print_messages_agree_with_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(dir.path(), &["enable", "--print"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(
        r.stderr
            .contains("cannot tell which platform chart version the snippet is for"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("nothing was printed"), "{}", r.stderr);
    assert!(!r.stderr.contains("written"), "{}", r.stderr);
    assert!(!r.stderr.contains("the file"), "{}", r.stderr);
    let r = run(dir.path(), &["enable", "--print", "--chart-version", "two"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("nothing was printed"), "{}", r.stderr);
    let r = run(
        dir.path(),
        &["enable", "--print", "--chart-version", "1.1.0"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("schema: flat customImageShaEnabled (platform chart 1.1.0 reads the flat form; version from --chart-version)"),
        "{}",
        r.stderr
    );
}
