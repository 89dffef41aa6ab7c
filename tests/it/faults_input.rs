//! Fault matrix, bad-input rows: malformed catalog JSON (import, and pin --from-configmap),
//! malformed values YAML (enable), invalid image references (on the command line and in a
//! workload), unknown flags and bad flag values. Each stops with exit 2 and a message that names
//! the problem, and changes nothing.
use crate::support;

use crate::pin::{annotated, images};
use crate::support::faults::{release_state, Proxy};
use crate::support::{airflow_release_yaml, Bed};
use serde_json::json;

const REPO: &str = "astronomer/astro-runtime";

#[test]
fn malformed_catalog_json_changes_nothing() {
    let Some(bed) = Bed::get() else { return };
    let ns = bed.namespace("imal");
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = "{\n  \"runtimeVersions\": {\n    \"12.1.0\": {\"metadata\": {\"channel\": \"stable\",}}\n  }\n}";
    let file = support::write_file(dir.path(), "catalog.json", bad);
    let cm = |bed: &Bed| {
        bed.kubectl(&["-n", &ns, "get", "configmap", "astro-runtime-base-images"])
            .ok()
    };

    // import from a file, and from stdin.
    let out = bed.run(&[
        "import",
        "--platform-namespace",
        &ns,
        "--source",
        file.to_str().expect("path"),
    ]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("is not valid JSON") && out.stderr.contains("line 3"),
        "names the position: {}",
        out.stderr
    );
    let out = bed.run_with(
        &["import", "--platform-namespace", &ns, "--source", "-"],
        |c| {
            c.stdin(std::fs::File::open(&file).expect("open"));
        },
    );
    out.assert_code(2);
    assert!(out.stderr.contains("is not valid JSON"), "{}", out.stderr);
    assert!(!cm(&bed), "no ConfigMap written");

    // pin --from-configmap reading a releases ConfigMap whose JSON is broken.
    let image = format!("{}/{REPO}:12.1.0", bed.reg_token);
    bed.apply(&airflow_release_yaml(&ns, "imal-rel", &image, "Deployment"));
    // A Houston Deployment makes the namespace a platform namespace for --from-configmap.
    bed.apply(&format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: imal-houston
  namespace: {ns}
  labels: {{component: houston, release: imal, tier: astronomer}}
spec:
  selector: {{matchLabels: {{component: houston}}}}
  template:
    metadata: {{labels: {{component: houston}}}}
    spec:
      containers: [{{name: houston, image: "quay.io/astronomer/ap-houston-api:0.37.0"}}]
"#
    ));
    let o = bed.kubectl(&[
        "-n",
        &ns,
        "create",
        "configmap",
        "astro-runtime-base-images",
        &format!("--from-file=astro_runtime_releases.json={}", file.display()),
    ]);
    assert!(o.ok(), "{}", o.stderr);
    let out = bed.run(&[
        "pin",
        "imal-rel",
        "-n",
        &ns,
        "--from-configmap",
        "--platform-namespace",
        &ns,
        "--yes",
    ]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("astro-runtime-base-images: catalog JSON does not parse")
            && out.stderr.contains("line 3"),
        "{}",
        out.stderr
    );
    // Four Runtime containers and the pod template, all on the tag; no records.
    let (imgs, annotated) = release_state(|a| bed.get_json(a), &ns, REPO);
    assert_eq!(imgs, vec![image.clone(); 5]);
    assert_eq!(annotated, 0);
}

#[test]
fn malformed_values_yaml_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "astronomer:\n  houston:\n    config:\n      deployments:\n        enableCustomImageSha: [true\n  registry: {}\n";
    let file = support::write_file(dir.path(), "values.yaml", text);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-astro_sha"))
        .args(["enable", "--values", file.to_str().expect("path")])
        .env("KUBECONFIG", dir.path().join("no-such-kubeconfig"))
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run enable");
    let out = support::Out::from(out);
    out.assert_code(2);
    assert!(
        out.stderr.contains("is not valid YAML at line")
            && out.stderr.contains("nothing was written"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read_to_string(&file).expect("read"), text);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 1, "no backup or temp file left: {names:?}");
}

#[test]
fn invalid_image_references_stop_before_any_request() {
    let Some(bed) = Bed::get() else { return };
    // A valid reference served through a proxy beside each invalid one: nothing is asked.
    let p = Proxy::registry(&bed.reg_token, json!([]));
    let good = format!("{}/{REPO}:12.1.0", p.host());
    for bad in [
        "127.0.0.1:5002/astronomer/Astro-Runtime:12.1.0",
        "astro-runtime:12 .1",
        "quay.io/astronomer/astro-runtime@sha256:abc",
        "quay.io/astronomer/astro-runtime:",
        "",
    ] {
        let out = bed.run(&["resolve", "--insecure-registry", &p.host(), &good, bad]);
        out.assert_code(2);
        assert!(
            out.stderr
                .contains(&format!("invalid image reference {bad:?}"))
                && out
                    .stderr
                    .contains("hint: write it as [registry/]repository"),
            "{bad:?}: {}",
            out.stderr
        );
    }
    // Read once every request the proxy took has its line (a line is written after the
    // answer, so a run that has exited may have one still to come).
    let asked = p.settled_requests();
    assert!(asked.is_empty(), "{asked:?}");

    // In a workload: show reports the broken Runtime container, pin refuses the release.
    let ns = bed.namespace("iref");
    let image = format!("{}/{REPO}:12.1.0", bed.reg_token);
    let broken = format!("{}/astronomer/Astro-Runtime:12.1.0", bed.reg_token);
    let yaml = airflow_release_yaml(&ns, "iref-rel", &image, "Deployment").replacen(
        &format!("name: scheduler-log-groomer\n          image: {image}"),
        &format!("name: scheduler-log-groomer\n          image: {broken}"),
        1,
    );
    assert!(yaml.contains(&broken));
    bed.apply(&yaml);
    // Every container's image (the broken one, which the REPO filter of release_state would
    // miss, and statsd's included), the pod template and the records, as they were.
    let before = (images(&bed, &ns), annotated(&bed, &ns));
    assert!(
        before.0 .0.iter().any(|(_, i)| *i == broken),
        "{:?}",
        before.0
    );
    let out = bed.run(&["show", "iref-rel", "-n", &ns, "-o", "json"]);
    out.assert_code(1);
    let rows = out.json()["items"].as_array().expect("items").clone();
    let bad_row = rows
        .iter()
        .find(|r| r["container"] == "scheduler-log-groomer")
        .expect("the broken container is listed");
    assert_eq!(bad_row["status"], "unresolved: invalid reference");
    bed.run(&["show", "iref-rel", "-n", &ns, "--check"])
        .assert_code(1);
    let out = bed.run(&["pin", "iref-rel", "-n", &ns, "--yes"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("container scheduler-log-groomer")
            && out.stderr.contains(&broken)
            && out.stderr.contains("nothing was changed"),
        "{}",
        out.stderr
    );
    assert_eq!((images(&bed, &ns), annotated(&bed, &ns)), before);
}

#[test]
fn unknown_flags_and_bad_values_exit_2_with_clap_s_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        support::Out::from(
            std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-astro_sha"))
                .args(args)
                .env("KUBECONFIG", dir.path().join("no-such-kubeconfig"))
                .env("NO_COLOR", "1")
                .stdin(std::process::Stdio::null())
                .output()
                .expect("run"),
        )
    };
    for cmd in [
        "resolve", "show", "pin", "unpin", "import", "enable", "status",
    ] {
        let out = run(&[cmd, "--frobnicate"]);
        out.assert_code(2);
        assert!(
            out.stderr
                .contains("error: unexpected argument '--frobnicate' found")
                && out
                    .stderr
                    .contains(&format!("Usage: kubectl astro-sha {cmd}")),
            "{cmd}: {}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{cmd}: {}", out.stdout);
    }
    let out = run(&["frobnicate"]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("error: unrecognized subcommand 'frobnicate'"),
        "{}",
        out.stderr
    );
    for (args, want) in [
        (
            &["show", "-o", "xml"][..],
            "invalid value 'xml' for '--output",
        ),
        (
            &["resolve", "--registry-timeout", "soon", "x:1"][..],
            "invalid value 'soon' for '--registry-timeout",
        ),
        (
            &["resolve", "--concurrency", "0", "x:1"][..],
            "invalid value '0' for '--concurrency",
        ),
        (
            &["resolve", "--platform", "linux", "x:1"][..],
            "expected os/arch[/variant]",
        ),
        (
            &["pin", "--all", "--dry-run=maybe"][..],
            "invalid value 'maybe' for '--dry-run",
        ),
    ] {
        let out = run(args);
        out.assert_code(2);
        assert!(out.stderr.contains(want), "{args:?}: {}", out.stderr);
    }
}
