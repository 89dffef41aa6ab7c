//! The harness itself: the binary runs, and a bed test without the bed is never silently green.
use std::process::Command;

use crate::support::Out;

#[test]
fn binary_prints_version() {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-astro_sha"))
        .arg("version")
        .output()
        .expect("run");
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.starts_with(&format!("kubectl-astro_sha {}", env!("CARGO_PKG_VERSION"))),
        "{s}"
    );
}

/// Runs one bed test of this very test binary against a state directory with no bed in it.
fn run_one_bed_test_without_a_bed(ci: Option<&str>) -> Out {
    let empty = tempfile::tempdir().expect("tempdir");
    let mut c = Command::new(std::env::current_exe().expect("own test binary"));
    c.args([
        "--exact",
        "pin::second_pin_is_a_noop",
        "--test-threads",
        "1",
    ])
    .env("ASTRO_SHA_TESTBED_DIR", empty.path())
    .env_remove("CI");
    if let Some(v) = ci {
        c.env("CI", v);
    }
    Out::from(c.output().expect("run the test binary"))
}

/// Outside CI a bed test without the bed passes but says, on the terminal and with its name, that
/// it was skipped: the line must survive the test runner's output capture (which swallows
/// `eprintln!`). Under CI (`CI=true`, `TRUE` or `1`) the same test fails.
#[test]
fn a_bed_test_without_the_bed_is_visibly_skipped_and_fails_under_ci() {
    let out = run_one_bed_test_without_a_bed(None);
    out.assert_code(0);
    assert!(
        out.stdout.contains("test result: ok. 1 passed"),
        "exactly the one test ran: {}",
        out.stdout
    );
    assert!(
        out.stderr
            .contains("SKIPPED pin::second_pin_is_a_noop: test bed not running")
            && out.stderr.contains("scripts/testbed up"),
        "the skip is visible despite the capture: stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );

    // CI=true, and the other spellings CI systems use.
    for ci in ["true", "TRUE", "1"] {
        let out = run_one_bed_test_without_a_bed(Some(ci));
        assert_eq!(
            out.code, 101,
            "CI={ci}: the test binary reports a failed test"
        );
        assert!(
            out.stdout
                .contains("test result: FAILED. 0 passed; 1 failed")
                && format!("{}{}", out.stdout, out.stderr).contains("test bed missing under CI"),
            "CI={ci}: stdout:\n{}\nstderr:\n{}",
            out.stdout,
            out.stderr
        );
    }
    // Not CI: a skip, as without CI.
    let out = run_one_bed_test_without_a_bed(Some("false"));
    out.assert_code(0);
}
