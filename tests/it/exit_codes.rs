//! The exit-code contract of README's "Exit codes" table, row by row, on the bed (issue 23).
//!
//! 0: done, and the answer is complete (with `--check`: everything is known to be in order); a
//! person's "no" (or Ctrl-D) at the confirmation. 1: the run finished, but its answer is not in
//! order or not complete (`--check` failed or could not be decided, a tag did not resolve, a
//! read was refused, rows were refused, tags missing, a digest moved). 2: error (bad input,
//! unknown release, no terminal and no `--yes`, ...): nothing changed. 130: Ctrl-C at the
//! confirmation.

use crate::pin::{annotated, release, REPO, TAG};
use crate::support::{self, on_a_terminal, Bed};

/// A pod of `rel`'s `component` whose kubelet reports `digest` for `containers` (and for the
/// init container), written through pods/status as the bed has no kubelet.
pub(crate) fn running(
    bed: &Bed,
    ns: &str,
    rel: &str,
    component: &str,
    containers: &[&str],
    digest: &str,
) {
    let name = format!("{rel}-{component}-0");
    let cs: Vec<serde_json::Value> = containers
        .iter()
        .map(|c| serde_json::json!({"name": c, "image": "placeholder"}))
        .collect();
    bed.apply(
        &serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns,
                "labels": {"tier": "airflow", "component": component, "release": rel}},
            "spec": {"automountServiceAccountToken": false, "containers": cs}})
        .to_string(),
    );
    let id = format!("{}/{REPO}@{digest}", bed.reg_token);
    let st = |c: &str| serde_json::json!({"name": c, "image": "placeholder", "imageID": id, "ready": true, "restartCount": 0});
    let status = serde_json::json!({"status": {
        "containerStatuses": containers.iter().map(|c| st(c)).collect::<Vec<_>>(),
        "initContainerStatuses": [st("wait-for-airflow-migrations")]}});
    bed.set_pod_status(ns, &name, &status);
}

#[test]
fn show_0_for_any_state_1_unresolved_or_check_not_known_to_pass_2_error() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, _) = release(&bed, "xc-show", "Deployment");
    // 0: a table of tag-only rows is a complete answer
    bed.run(&["show", &rel, "-n", &ns]).assert_code(0);
    // 1: --check, not pinned
    let o = bed.run(&["show", &rel, "-n", &ns, "--check"]);
    o.assert_code(1);
    assert!(
        o.stderr.contains(
            "check failed: 5 of 5 Runtime containers are not pinned and running their pin"
        ),
        "{}",
        o.stderr
    );
    // 1: --check, pinned, but no pod reports what runs: unknown is not a pass
    bed.run(&["pin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    let o = bed.run(&["show", &rel, "-n", &ns, "--check"]);
    o.assert_code(1);
    assert!(
        o.stderr.contains(
            "4 of 5 Runtime containers are pinned, but whether they run their pin is unknown"
        ) && o
            .stderr
            .contains(&format!("{ns}/deployment/{rel}-scheduler")),
        "{}",
        o.stderr
    );
    // 0: --check, pinned and every pod runs the pin (the pod template has no pods: its pin is
    // what the next worker runs)
    let digest = bed.seeded_digest(REPO, TAG);
    running(
        &bed,
        &ns,
        &rel,
        "scheduler",
        &["scheduler", "scheduler-log-groomer"],
        &digest,
    );
    running(&bed, &ns, &rel, "webserver", &["webserver"], &digest);
    bed.run(&["show", &rel, "-n", &ns, "--check"])
        .assert_code(0);
    // 1: --check over nothing: no Runtime container is not "all pinned"
    let empty = bed.namespace("xc-empty");
    let o = bed.run(&["show", "-n", &empty, "--check"]);
    o.assert_code(1);
    assert!(
        o.stderr.contains(&format!(
            "check failed: no Runtime containers in namespace \"{empty}\""
        )) && !o.stderr.contains("0 of 0"),
        "{}",
        o.stderr
    );
    // 1: a tag that does not resolve leaves the table incomplete, without --check too
    let gone = bed.namespace("xc-unres");
    let missing = format!("{}/{REPO}:0.0.0-no-such-tag", bed.reg_token);
    bed.apply(&support::airflow_release_yaml(
        &gone,
        "gone-rel",
        &missing,
        "Deployment",
    ));
    let o = bed.run(&["show", "-n", &gone]);
    o.assert_code(1);
    assert!(
        o.stderr
            .contains("5 of 5 Runtime containers are unresolved"),
        "{}",
        o.stderr
    );
    // 2: an error (a release that does not exist)
    bed.run(&["show", "no-such-release-0000", "-n", &ns])
        .assert_code(2);
}

#[test]
fn status_0_complete_1_partial_or_check_not_in_order() {
    let Some(bed) = Bed::get() else { return };
    let (ns, _rel, _) = release(&bed, "xc-status", "Deployment");
    let base = ["status", "--platform-namespace", "astronomer", "-n", &ns];
    // 0: the report is complete, whatever it found (a tag-only release is a problem)
    let o = bed.run(&base);
    o.assert_code(0);
    assert!(o.stdout.contains("Problems ("), "{}", o.stdout);
    // 1: --check and something is not in order
    let mut check = base.to_vec();
    check.push("--check");
    bed.run(&check).assert_code(1);
    // 1: a read was refused: the report is partial, --check or not
    let o = bed.run(&[&base[..], &["--context", "testbed-norights"]].concat());
    o.assert_code(1);
    assert!(
        o.stderr.contains("status is partial") && o.stdout.contains("could not read:"),
        "{}\n{}",
        o.stdout,
        o.stderr
    );
}

#[test]
fn pin_and_unpin_0_done_or_dry_1_refused_rows_2_no_terminal_without_yes() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, _) = release(&bed, "xc-pin", "Deployment");
    // 0: a dry run
    bed.run(&["pin", &rel, "-n", &ns, "--dry-run=client"])
        .assert_code(0);
    // 2: no terminal to ask on and no --yes: nothing written
    let o = bed.run(&["pin", &rel, "-n", &ns]);
    o.assert_code(2);
    assert!(o.stderr.contains("--yes"), "{}", o.stderr);
    assert_eq!(annotated(&bed, &ns), 0);
    // 1: rows refused (nothing runs to freeze), the rest done
    let o = bed.run(&[
        "pin",
        &rel,
        "-n",
        &ns,
        "--digest-source",
        "running",
        "--yes",
    ]);
    o.assert_code(1);
    assert!(o.stdout.contains("refuse"), "{}", o.stdout);
    // 0: written; 0 again: nothing to change
    bed.run(&["pin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    bed.run(&["pin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    bed.run(&["unpin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    assert_eq!(annotated(&bed, &ns), 0);
    // 0: nothing to unpin, and no table header over nothing
    let o = bed.run(&["unpin", &rel, "-n", &ns, "--yes"]);
    o.assert_code(0);
    assert!(o.stdout.is_empty(), "{}", o.stdout);
    assert!(o.stderr.contains("Nothing to unpin"), "{}", o.stderr);
}

/// The confirmation on a terminal: "n", Enter and Ctrl-D are a person's no (exit 0, nothing
/// written); Ctrl-C is an interrupt (exit 130, nothing written, the line ended and the cursor
/// never hidden); "y" writes.
#[test]
fn the_confirmation_no_is_0_ctrl_d_is_no_ctrl_c_is_130() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, _) = release(&bed, "xc-tty", "Deployment");
    let args = ["pin", rel.as_str(), "-n", &ns];
    for (keys, what) in [(&b"n"[..], "n"), (b"\r", "Enter"), (b"\x04", "Ctrl-D")] {
        let (code, shown) = on_a_terminal(&bed, &args, keys);
        assert_eq!(code, 0, "{what}: {shown}");
        assert!(
            shown.contains("Pin 3 object(s)? [y/N] no\r\nAborted; nothing was changed."),
            "{what}: {shown:?}"
        );
        assert!(!shown.contains("error:"), "{what}: {shown}");
        assert_eq!(annotated(&bed, &ns), 0, "{what}");
    }
    let (code, shown) = on_a_terminal(&bed, &args, b"\x03");
    assert_eq!(code, 130, "{shown}");
    assert!(
        shown.contains("Pin 3 object(s)? [y/N] ^C\r\nInterrupted; nothing was changed."),
        "{shown:?}"
    );
    assert!(
        !shown.contains("\u{1b}[?25l"),
        "the cursor is never hidden: {shown:?}"
    );
    assert_eq!(annotated(&bed, &ns), 0);
    let (code, shown) = on_a_terminal(&bed, &args, b"y");
    assert_eq!(code, 0, "{shown}");
    assert!(annotated(&bed, &ns) > 0, "{shown}");
}

#[test]
fn resolve_import_enable_version_and_usage() {
    let Some(bed) = Bed::get() else { return };
    let good = format!("{}/{REPO}:{TAG}", bed.reg_token);
    let missing = format!("{}/{REPO}:0.0.0-no-such-tag", bed.reg_token);
    // resolve: 0 all resolved, 1 one did not, 2 bad input
    bed.run(&["resolve", &good]).assert_code(0);
    bed.run(&["resolve", &good, &missing]).assert_code(1);
    bed.run(&["resolve", "UPPER/Case:1"]).assert_code(2);
    // import: 1 tags missing (nothing written), 0 with --allow-missing
    let dir = tempfile::tempdir().unwrap();
    let catalog = support::write_file(
        dir.path(),
        "catalog.json",
        r#"{"runtimeVersions": {"12.1.0": {"metadata": {"channel": "stable"}}, "4.2.3": {"metadata": {"channel": "stable"}}}}"#,
    );
    let out = dir.path().join("out.json");
    let mirror = format!("quay.io={}", bed.reg_token);
    let import = |extra: &[&str]| {
        let mut a = vec![
            "import",
            "--source",
            catalog.to_str().unwrap(),
            "--registry-mirror",
            &mirror,
            "--output-file",
            out.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        bed.run(&a)
    };
    let o = import(&[]);
    o.assert_code(1);
    // one missing tag in the singular (it said "1 of 2 tags are missing" / "1 tags are missing")
    assert!(
        o.stderr
            .contains("1 of 2 tags is missing from the registry"),
        "{}",
        o.stderr
    );
    assert!(!out.exists(), "nothing written");
    let o = import(&["--allow-missing"]);
    o.assert_code(0);
    assert!(
        o.stderr
            .contains("warning: 1 tag is missing from the registry")
            && o.stderr.contains("would import 2 versions:")
                | o.stderr.contains("imported 2 versions:"),
        "{}",
        o.stderr
    );
    assert!(out.exists());
    // 2: a ConfigMap write without --yes and without a terminal; import prints its report after
    // writing, so the hint does not send the reader to a change "shown above" (issue 23)
    let o = bed.run(&[
        "import",
        "--source",
        catalog.to_str().unwrap(),
        "--registry-mirror",
        &mirror,
        "--versions",
        "12.1.0",
        "--platform-namespace",
        "astronomer",
        "--configmap",
        "xc-not-written",
    ]);
    o.assert_code(2);
    assert!(
        o.stderr
            .contains("--yes was not given; nothing was written")
            && o.stderr.contains("review the change with --dry-run")
            && !o.stderr.contains("shown above"),
        "{}",
        o.stderr
    );
    // enable: 0 a dry run, 2 when the chart version cannot be known
    let values = support::write_file(
        dir.path(),
        "values.yaml",
        "astronomer:\n  houston:\n    config: {}\n",
    );
    bed.run(&[
        "enable",
        "--values",
        values.to_str().unwrap(),
        "--chart-version",
        "0.37.4",
        "--dry-run",
    ])
    .assert_code(0);
    bed.run_with(
        &["enable", "--values", values.to_str().unwrap(), "--dry-run"],
        |c| {
            c.env("KUBECONFIG", dir.path().join("no-such-kubeconfig"));
        },
    )
    .assert_code(2);
    // no arguments: the help on stdout, exit 0 (as kubectl); version 0; a usage error 2
    let o = bed.run(&[]);
    o.assert_code(0);
    assert!(
        o.stdout.contains("Usage: kubectl astro-sha") && o.stderr.is_empty(),
        "{}",
        o.stderr
    );
    bed.run(&["version"]).assert_code(0);
    bed.run(&["show", "--no-such-flag"]).assert_code(2);
}

/// Flags that would do nothing for a command are refused (exit 2) before anything is read, and
/// kubectl's other `-o` formats get an error naming the ones there are (issue 23).
#[test]
fn flags_that_do_nothing_and_unknown_formats_are_exit_2_before_any_request() {
    let Some(bed) = Bed::get() else { return };
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("no-such-kubeconfig");
    let run = |args: &[&str]| {
        bed.run_with(args, |c| {
            c.env("KUBECONFIG", &nowhere);
        })
    };
    for (args, says) in [
        (&["version", "-o", "wide"][..], "-o wide: `kubectl astro-sha version` has no wide output; its formats: table, json, yaml"),
        (&["enable", "--print", "--chart-version", "0.37.4", "-o", "wide"], "-o wide: `kubectl astro-sha enable` has no wide output"),
        (&["enable", "--print", "--chart-version", "0.37.4", "--no-headers"], "--no-headers: `kubectl astro-sha enable` prints no table"),
        (&["resolve", "x:1", "-A"], "-A: `kubectl astro-sha resolve` reads no namespace"),
        // --print writes nothing: a rehearsal or an answer to a question it never asks does nothing.
        (&["enable", "--print", "--chart-version", "0.37.4", "--dry-run"], "'--print' cannot be used with '--dry-run"),
        (&["enable", "--print", "--chart-version", "0.37.4", "--yes"], "'--print' cannot be used with '--yes'"),
        (&["show", "-A", "-o", "jsonpath={.items[*].image}"], "the formats are table, wide, json and yaml"),
        (&["show", "-A", "-o", "name"], "| jq -r"),
    ] {
        let o = run(args);
        o.assert_code(2);
        assert!(o.stderr.contains(says), "{args:?}: {}", o.stderr);
        assert!(o.stdout.is_empty(), "{args:?}: {}", o.stdout);
        // refused before the (missing) kubeconfig was read
        assert!(!o.stderr.contains("kubeconfig"), "{args:?}: {}", o.stderr);
    }
    run(&["version", "-o", "json"]).assert_code(0);
}
