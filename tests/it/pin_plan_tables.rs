//! pin's plan tables on a real platform's names, on the bed: the default table fits 160 columns,
//! `-o wide` and `-o json` carry the full digests and references (issue 14; `tables.rs` holds the
//! same budget for show, status, import and resolve).

use crate::pin::{REPO, TAG};
use crate::support::{self, airflow_release_yaml, Bed};

/// A namespace and release named like a real platform's (`astronomer-nebular-star-4821`,
/// `nebular-star-4821`, issue 14), with a random number so reruns do not collide. Deleted on drop.
struct RealNames {
    ns: String,
    release: String,
    kubeconfig: std::path::PathBuf,
}

impl RealNames {
    fn new(bed: &Bed) -> RealNames {
        let n = (std::process::id()
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0))
            % 9000
            + 1000;
        let release = format!("nebular-star-{n}");
        let ns = format!("astronomer-{release}");
        bed.apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels:\n    platform-release: astronomer\n    astro-sha-test: \"true\"\n"
        ));
        RealNames {
            ns,
            release,
            kubeconfig: bed.kubeconfig.clone(),
        }
    }
}

impl Drop for RealNames {
    fn drop(&mut self) {
        support::delete_namespace(&self.kubeconfig, &self.ns);
    }
}

fn widest(text: &str) -> usize {
    text.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

#[test]
fn plan_tables_fit_160_columns_and_wide_and_json_carry_full_digests() {
    let Some(bed) = Bed::get() else { return };
    // The bed's platform (its names are as long as a real platform's, or longer).
    let platform = [
        "pin",
        "quasaric-sun-1234",
        "galactic-nova-9012",
        "eccentric-star-5678",
        "-A",
        "--dry-run=client",
    ];
    let out = bed.run(&platform);
    out.assert_code(0);
    assert!(out.stdout.lines().count() > 30, "{}", out.stdout);
    assert!(widest(&out.stdout) <= 160, "{}", out.stdout);
    assert!(out.stdout.starts_with("NAMESPACE "), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("Summary: pin 6 object(s) in 1 release(s)")
            && out
                .stderr
                .contains("pods roll now: deployment/quasaric-sun-1234-scheduler"),
        "{}",
        out.stderr
    );

    // A release named as issue 14 names it, pinned and unpinned.
    let real = RealNames::new(&bed);
    let image = format!("{}/{REPO}:{TAG}", bed.reg_token);
    bed.apply(&airflow_release_yaml(
        &real.ns,
        &real.release,
        &image,
        "Deployment",
    ));
    let digest = bed.seeded_digest(REPO, TAG);
    for args in [
        vec!["pin", &real.release, "--dry-run=client"],
        vec!["pin", &real.release, "-A", "--dry-run=client"],
    ] {
        let out = bed.run(&args);
        out.assert_code(0);
        assert!(widest(&out.stdout) <= 160, "{args:?}:\n{}", out.stdout);
        assert!(
            out.stdout.contains(&format!(
                "deployment/{}-scheduler   wait-for-airflow-migrations",
                real.release
            )),
            "{}",
            out.stdout
        );
        assert!(!out.stdout.contains(&digest), "short digests only");
        assert!(out.stdout.contains(&digest[..19]), "{}", out.stdout);
    }
    let wide = bed.run(&["pin", &real.release, "-o", "wide", "--dry-run=client"]);
    wide.assert_code(0);
    assert!(
        wide.stdout.contains(&format!("{image}@{digest}")),
        "{}",
        wide.stdout
    );
    let json = bed.run(&["pin", &real.release, "-o", "json", "--dry-run=client"]);
    json.assert_code(0);
    let j = json.json();
    let rows = j["plan"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    for r in rows {
        assert_eq!(r["to"], format!("{image}@{digest}"), "{r}");
        assert_eq!(r["from"], image.as_str());
    }
    assert_eq!(j["edits"].as_array().unwrap().len(), 3);
    assert_eq!(j["summary"][0]["objects"], 3);

    bed.run(&["pin", &real.release, "--yes"]).assert_code(0);
    for args in [
        vec!["unpin", &real.release, "--dry-run=client"],
        vec!["unpin", &real.release, "-A", "--dry-run=client"],
    ] {
        let out = bed.run(&args);
        out.assert_code(0);
        assert_eq!(out.stdout.lines().count(), 6, "{}", out.stdout);
        assert!(widest(&out.stdout) <= 160, "{args:?}:\n{}", out.stdout);
    }
    let json = bed.run(&["unpin", &real.release, "-o", "json", "--dry-run=client"]);
    assert_eq!(json.json()["plan"][0]["from"], format!("{image}@{digest}"));
}
