//! Every command that writes asks first, on the bed: without a terminal (a pipe, cron, CI) pin,
//! unpin, enable and import write nothing unless `--yes` (an answer on stdin does not count); on
//! a terminal only a yes writes, a no ends with exit 0 and a signal at the prompt writes nothing
//! (issues 10 and 14).

use std::io::Write;
use std::process::Stdio;

use crate::pin::{annotated, assert_all_on, images, release, REPO, TAG};
use crate::support::{self, Bed, Out};

/// Runs the plugin with stdin and stdout as pipes (no terminal), like `... | tee log`.
fn piped(bed: &Bed, args: &[&str]) -> Out {
    let mut child = bed
        .cmd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // An answer on stdin must not count as a confirmation: only a terminal or --yes does.
    let _ = child.stdin.take().expect("stdin").write_all(b"y\n");
    Out::from(child.wait_with_output().expect("wait"))
}

#[track_caller]
fn assert_refused_for_want_of_yes(out: &Out) {
    out.assert_code(2);
    assert!(
        out.stderr.contains("--yes") && out.stderr.contains("nothing was written"),
        "{}",
        out.stderr
    );
}

#[test]
fn pin_and_unpin_write_nothing_without_a_terminal_or_yes() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, image) = release(&bed, "noyes-pin", "Deployment");
    let before = images(&bed, &ns);
    assert_refused_for_want_of_yes(&piped(&bed, &["pin", &rel, "-n", &ns]));
    assert_eq!(images(&bed, &ns), before);
    assert_eq!(annotated(&bed, &ns), 0);
    piped(&bed, &["pin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    let pinned = images(&bed, &ns);
    assert_ne!(pinned, before);

    assert_refused_for_want_of_yes(&piped(&bed, &["unpin", &rel, "-n", &ns]));
    assert_eq!(images(&bed, &ns), pinned);
    assert_eq!(annotated(&bed, &ns), 3);
    piped(&bed, &["unpin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    assert_all_on(&bed, &ns, &image);

    // --values-out replacing an existing file of the user's needs the same yes.
    let dir = tempfile::tempdir().unwrap();
    let file = support::write_file(dir.path(), "values.yaml", "# mine\n");
    let f = file.to_str().unwrap();
    assert_refused_for_want_of_yes(&piped(&bed, &["pin", &rel, "-n", &ns, "--values-out", f]));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "# mine\n");
    piped(&bed, &["pin", &rel, "-n", &ns, "--values-out", f, "--yes"]).assert_code(0);
    let written = std::fs::read_to_string(&file).unwrap();
    let digest = bed.seeded_digest(REPO, TAG);
    assert!(
        written.contains(&format!("digest: \"{digest}\"")),
        "{written}"
    );
}

#[test]
fn enable_and_import_write_nothing_without_a_terminal_or_yes() {
    let Some(bed) = Bed::get() else { return };
    // enable --values edits the user's file in place.
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    let text =
        std::fs::read_to_string(support::repo_root().join("tests/fixtures/values/no-flag.yaml"))
            .unwrap();
    std::fs::write(&values, &text).unwrap();
    let v = values.to_str().unwrap();
    let enable = ["enable", "--values", v, "--chart-version", "0.37.4"];
    assert_refused_for_want_of_yes(&piped(&bed, &enable));
    assert_eq!(
        std::fs::read_to_string(&values).unwrap(),
        text,
        "file untouched"
    );
    let mut with_yes = enable.to_vec();
    with_yes.push("--yes");
    piped(&bed, &with_yes).assert_code(0);
    assert_ne!(std::fs::read_to_string(&values).unwrap(), text);

    // import writes the releases ConfigMap.
    let ns = bed.namespace("noyes-import");
    // --output-file: a new file is the output asked for; an existing one is the user's file.
    let existing = support::write_file(dir.path(), "existing.json", "{}\n");
    let catalog = support::write_file(
        dir.path(),
        "catalog.json",
        &format!(
            r#"{{"version":"1.0","runtimeVersions":{{"{TAG}":{{"metadata":{{"channel":"stable"}}}}}},"runtimeVersionsV3":{{}}}}"#
        ),
    );
    let repo = format!("{}/{REPO}", bed.reg_token);
    let import = [
        "import",
        "--platform-namespace",
        &ns,
        "--source",
        catalog.to_str().unwrap(),
        "--airflow2-repository",
        &repo,
    ];
    let to_file = |file: &str| {
        let mut a = import.to_vec();
        a.extend(["--output-file", file]);
        piped(&bed, &a)
    };
    assert_refused_for_want_of_yes(&to_file(existing.to_str().unwrap()));
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "{}\n");
    let fresh = dir.path().join("fresh.json");
    to_file(fresh.to_str().unwrap()).assert_code(0);
    assert!(std::fs::read_to_string(&fresh)
        .unwrap()
        .contains(&bed.seeded_digest(REPO, TAG)));

    assert_refused_for_want_of_yes(&piped(&bed, &import));
    let get = bed.kubectl(&["get", "configmap", "astro-runtime-base-images", "-n", &ns]);
    assert!(
        !get.ok() && get.stderr.contains("NotFound"),
        "{}",
        get.stderr
    );
    let mut with_yes = import.to_vec();
    with_yes.push("--yes");
    piped(&bed, &with_yes).assert_code(0);
    let cm = bed.get_json(&["configmap", "astro-runtime-base-images", "-n", &ns]);
    assert!(
        cm["data"]["astro_runtime_releases.json"]
            .as_str()
            .unwrap()
            .contains(&bed.seeded_digest(REPO, TAG)),
        "{cm}"
    );
}

/// Runs `args` on a terminal and answers the confirmation with `answer` once it is asked.
fn on_a_terminal(bed: &Bed, args: &[&str], answer: &str) -> (i32, String) {
    support::tty::on_a_terminal(bed, args, |_| answer.to_string())
}

#[test]
fn a_terminal_is_asked_and_only_yes_writes() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, image) = release(&bed, "tty", "Deployment");
    let before = images(&bed, &ns);
    let (code, shown) = on_a_terminal(&bed, &["pin", &rel, "-n", &ns], "n");
    assert_eq!(code, 0, "a person's no is not a finding: {shown}");
    assert!(
        shown.contains("Pin 3 object(s)?") && shown.contains("Aborted; nothing was changed"),
        "{shown}"
    );
    assert_eq!(images(&bed, &ns), before);
    assert_eq!(annotated(&bed, &ns), 0);
    let (code, shown) = on_a_terminal(&bed, &["pin", &rel, "-n", &ns], "y");
    assert_eq!(code, 0, "{shown}");
    assert_all_on(
        &bed,
        &ns,
        &format!("{image}@{}", bed.seeded_digest(REPO, TAG)),
    );
}

/// A signal at the confirmation prompt ends the run with nothing written (the run watches for
/// signals only from its first write on, after the answer: docs/faults.md). SIGTERM is sent to
/// the plugin while it waits at `[y/N]`; it is handled as Ctrl-C is, and unlike SIGINT it is
/// not ignored by a test run started in the background of a non-interactive shell (POSIX has
/// such jobs ignore SIGINT, and the plugin inherits that).
#[test]
fn a_signal_at_the_prompt_ends_the_run_and_writes_nothing() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, _) = release(&bed, "ttysig", "StatefulSet");
    let before = (images(&bed, &ns), annotated(&bed, &ns));
    let (code, shown) = support::tty::on_a_terminal(&bed, &["pin", &rel, "-n", &ns], |pid| {
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill -TERM");
        assert!(kill.success());
        for _ in 0..600 {
            if support::tty::gone(pid) {
                return String::new();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the plugin (pid {pid}) outlived SIGTERM at the prompt");
    });
    assert_eq!(code, 128 + 15, "ended by SIGTERM: {shown}");
    // Ended by the signal itself: no write was under way, so nothing speaks of finishing one.
    assert!(
        shown.contains("Pin 3 object(s)?") && !shown.contains("interrupted"),
        "{shown}"
    );
    assert_eq!((images(&bed, &ns), annotated(&bed, &ns)), before);
}
