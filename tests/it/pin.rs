//! `pin` / `unpin` against the bed: real patches, real RBAC, real conflicts.
use crate::support;

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;

use crate::support::{airflow_release_yaml, Bed, Out};

pub(crate) const REPO: &str = "astronomer/astro-runtime";
pub(crate) const TAG: &str = "12.1.0";

/// A fresh namespace with an Airflow release on the seeded 12.1.0 Runtime.
pub(crate) fn release(
    bed: &Bed,
    prefix: &str,
    scheduler_kind: &str,
) -> (support::TestNamespace, String, String) {
    let ns = bed.namespace(prefix);
    let rel = format!("{prefix}-rel");
    let image = format!("{}/{REPO}:{TAG}", bed.reg_token);
    bed.apply(&airflow_release_yaml(&ns, &rel, &image, scheduler_kind));
    (ns, rel, image)
}

/// Every image of the namespace's workloads, and the pod template text.
pub(crate) fn images(bed: &Bed, ns: &str) -> (Vec<(String, String)>, String) {
    let mut out = vec![];
    for kind in ["deployments", "statefulsets"] {
        let list = bed.get_json(&[kind, "-n", ns]);
        for item in list["items"].as_array().unwrap() {
            let name = item["metadata"]["name"].as_str().unwrap();
            let spec = &item["spec"]["template"]["spec"];
            for key in ["initContainers", "containers"] {
                for c in spec[key].as_array().into_iter().flatten() {
                    out.push((
                        format!("{kind}/{name}/{}", c["name"].as_str().unwrap()),
                        c["image"].as_str().unwrap().to_string(),
                    ));
                }
            }
        }
    }
    out.sort();
    let cms = bed.get_json(&["configmaps", "-n", ns, "-l", "component=config"]);
    let template = cms["items"][0]["data"]["pod_template_file.yaml"]
        .as_str()
        .unwrap()
        .to_string();
    (out, template)
}

/// The records annotation, and where builds before v0.1.0 wrote it.
const RECORDS: &str = "astro-sha.github.io/original-images";
const OLD_RECORDS: &str = "astro-sha.astronomer.io/original-images";

/// How many objects of the namespace carry the pin bookkeeping annotation.
pub(crate) fn annotated(bed: &Bed, ns: &str) -> usize {
    annotated_with(bed, ns, RECORDS)
}

/// The objects of the namespace that carry annotation `key`: "kind/name" and its value.
fn annotated_objects(bed: &Bed, ns: &str, key: &str) -> Vec<(String, String)> {
    let mut out = vec![];
    for kind in [
        "deployments",
        "statefulsets",
        "configmaps",
        "cronjobs.batch",
    ] {
        for o in bed.get_json(&[kind, "-n", ns])["items"].as_array().unwrap() {
            if let Some(v) = o["metadata"]["annotations"][key].as_str() {
                let name = o["metadata"]["name"].as_str().unwrap();
                out.push((format!("{kind}/{name}"), v.to_string()));
            }
        }
    }
    out
}

fn annotated_with(bed: &Bed, ns: &str, key: &str) -> usize {
    annotated_objects(bed, ns, key).len()
}

/// The Runtime containers of a release from `airflow_release_yaml`: the scheduler's init
/// container, scheduler and log groomer, and the webserver (statsd runs another image).
pub(crate) const RUNTIME_CONTAINERS: usize = 4;

/// The Runtime images of the release's workloads (statsd left out) and its pod template text.
pub(crate) fn runtime_images(bed: &Bed, ns: &str) -> (Vec<(String, String)>, String) {
    let (imgs, template) = images(bed, ns);
    (
        imgs.into_iter()
            .filter(|(p, _)| !p.contains("statsd"))
            .collect(),
        template,
    )
}

/// The `original-images` records of one object (`kind/name`), parsed.
pub(crate) fn records(bed: &Bed, ns: &str, object: &str) -> serde_json::Value {
    let o = bed.get_json(&[object, "-n", ns]);
    let text = o["metadata"]["annotations"][RECORDS]
        .as_str()
        .unwrap_or_else(|| panic!("{object} has no records annotation: {o}"));
    serde_json::from_str(text).expect("records are JSON")
}

/// Every Runtime container of the release (all four) and the pod template hold exactly `image`.
#[track_caller]
pub(crate) fn assert_all_on(bed: &Bed, ns: &str, image: &str) {
    let (imgs, template) = runtime_images(bed, ns);
    assert_eq!(imgs.len(), RUNTIME_CONTAINERS, "{imgs:?}");
    for (p, i) in &imgs {
        assert_eq!(i, image, "{p}");
    }
    assert!(
        template.contains(&format!("image: {image}   # the Runtime")),
        "pod template: {template}"
    );
}

/// The release is pinned to `pinned`: every Runtime container and the pod template, and each of
/// its three objects (scheduler, webserver, ConfigMap) carries its records.
#[track_caller]
pub(crate) fn assert_pinned(bed: &Bed, ns: &str, pinned: &str) {
    assert_all_on(bed, ns, pinned);
    assert_eq!(
        annotated(bed, ns),
        3,
        "each written object carries its records"
    );
}

/// Nothing of the release is pinned: every Runtime container and the pod template hold `image`
/// (the tag), and no object carries the bookkeeping annotation.
#[track_caller]
pub(crate) fn assert_untouched(bed: &Bed, ns: &str, image: &str) {
    assert_all_on(bed, ns, image);
    assert_eq!(annotated(bed, ns), 0, "no bookkeeping annotation left");
}

/// Runs `pin REL -n NS --yes` with a pause between plan and apply; when the run announces the
/// pause (its plan is made, no write yet), runs `meanwhile` — the writer a person at the
/// confirmation prompt would race — and returns the finished run. The pause only bounds how long
/// `meanwhile` may take; nothing waits on a clock.
fn pin_with_a_writer_in_the_pause(bed: &Bed, ns: &str, rel: &str, meanwhile: impl FnOnce()) -> Out {
    let mut child = bed
        .cmd()
        .args(["pin", rel, "-n", ns, "--yes"])
        .env("ASTRO_SHA_PAUSE_BEFORE_APPLY_MS", "8000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("pin ended without pausing before its writes: {seen}");
        }
        seen.push_str(&line);
        if line.contains("pausing 8000 ms before applying") {
            break;
        }
    }
    meanwhile();
    stderr.read_to_string(&mut seen).unwrap();
    let o = child.wait_with_output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: seen,
    }
}

#[test]
fn pin_pins_exactly_the_runtime_containers_to_the_seeded_digest() {
    let Some(bed) = Bed::get() else { return };
    for kind in ["Deployment", "StatefulSet"] {
        let (ns, rel, image) = release(&bed, &format!("pin-{}", kind.to_lowercase()), kind);
        let digest = bed.seeded_digest(REPO, TAG);
        let out = bed.run(&["pin", &rel, "-n", &ns, "--yes"]);
        out.assert_code(0);
        assert!(
            out.stdout.contains("ACTION") && out.stdout.contains(&rel),
            "plan table shown: {}",
            out.stdout
        );
        let (imgs, template) = images(&bed, &ns);
        let pinned = format!("{image}@{digest}");
        for (path, img) in &imgs {
            if path.contains("statsd") {
                assert_eq!(
                    img, "quay.io/prometheus/statsd-exporter:v0.26.1",
                    "non-Runtime untouched"
                );
            } else {
                assert_eq!(img, &pinned, "{path}");
            }
        }
        assert!(imgs
            .iter()
            .any(|(p, _)| p.ends_with("/wait-for-airflow-migrations")));
        assert!(imgs
            .iter()
            .any(|(p, _)| p.ends_with("/scheduler-log-groomer")));
        assert!(
            template.contains(&format!("image: {pinned}   # the Runtime")),
            "pod template pinned in place: {template}"
        );
        // show agrees that every container is pinned; with no pod running, whether they run
        // their pin is unknown, and --check does not pass what it cannot know (issue 23).
        let show = bed.run(&["show", &rel, "-n", &ns, "-o", "json"]);
        show.assert_code(0);
        for i in show.json()["items"].as_array().unwrap() {
            assert_eq!(i["status"], "pinned", "{i}");
        }
        let check = bed.run(&["show", &rel, "-n", &ns, "--check"]);
        check.assert_code(1);
        assert!(
            check
                .stderr
                .contains("are pinned, but whether they run their pin is unknown"),
            "{}",
            check.stderr
        );
    }
}

#[test]
fn pin_then_unpin_restores_byte_identical_images_and_template() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, _) = release(&bed, "roundtrip", "StatefulSet");
    let before = images(&bed, &ns);
    bed.run(&["pin", &rel, "-n", &ns, "--yes", "--drop-tag"])
        .assert_code(0);
    let pinned = images(&bed, &ns);
    assert_ne!(before, pinned);
    let want = format!("{}/{REPO}@{}", bed.reg_token, bed.seeded_digest(REPO, TAG));
    assert!(
        pinned.1.contains(&format!("image: {want}   # the Runtime")),
        "--drop-tag writes repo@digest: {}",
        pinned.1
    );
    for (p, i) in pinned.0.iter().filter(|(p, _)| !p.contains("statsd")) {
        assert_eq!(i, &want, "{p}");
    }
    let out = bed.run(&["unpin", &rel, "-n", &ns, "--yes"]);
    out.assert_code(0);
    assert_eq!(images(&bed, &ns), before, "unpin restores exactly");
    assert_eq!(
        annotated(&bed, &ns),
        0,
        "bookkeeping removed from every object"
    );
}

/// An object pinned by a build before v0.1.0 carries its records under the old key only: unpin
/// still reads them there, restores every image and removes that key.
#[test]
fn records_under_the_old_key_still_unpin() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, _) = release(&bed, "oldkey", "StatefulSet");
    let before = images(&bed, &ns);
    bed.run(&["pin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    assert_ne!(images(&bed, &ns), before);
    // What an earlier build left behind: the same records, under the old key only.
    let pinned = annotated_objects(&bed, &ns, RECORDS);
    assert!(pinned.len() >= 3, "{pinned:?}");
    for (object, records) in &pinned {
        bed.kubectl(&[
            "annotate",
            "-n",
            &ns,
            object,
            &format!("{OLD_RECORDS}={records}"),
            &format!("{RECORDS}-"),
        ])
        .assert_code(0);
    }
    assert_eq!(annotated_with(&bed, &ns, RECORDS), 0);
    assert_eq!(annotated_with(&bed, &ns, OLD_RECORDS), pinned.len());

    bed.run(&["unpin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    assert_eq!(
        images(&bed, &ns),
        before,
        "unpin restores from the old key's records"
    );
    assert_eq!(
        annotated_with(&bed, &ns, OLD_RECORDS),
        0,
        "the old key is removed"
    );
    assert_eq!(
        annotated_with(&bed, &ns, RECORDS),
        0,
        "and nothing written under the new"
    );
}

#[test]
fn second_pin_is_a_noop() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, _) = release(&bed, "noop", "Deployment");
    bed.run(&["pin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    let rv = bed.get_json(&["deployment", &format!("{rel}-webserver"), "-n", &ns])["metadata"]
        ["resourceVersion"]
        .clone();
    let out = bed.run(&["pin", &rel, "-n", &ns, "--yes", "-o", "wide"]);
    out.assert_code(0);
    assert!(out.stderr.contains("Nothing to change"), "{}", out.stderr);
    assert!(
        out.stdout.contains("unchanged: already pinned"),
        "{}",
        out.stdout
    );
    let rv2 = bed.get_json(&["deployment", &format!("{rel}-webserver"), "-n", &ns])["metadata"]
        ["resourceVersion"]
        .clone();
    assert_eq!(rv, rv2, "no write at all");
}

#[test]
fn dry_runs_change_nothing() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, image) = release(&bed, "dry", "Deployment");
    let before = images(&bed, &ns);
    let out = bed.run(&["pin", &rel, "-n", &ns, "--dry-run=server", "--yes"]);
    out.assert_code(0);
    assert!(out.stderr.contains("server dry run"), "{}", out.stderr);
    let out = bed.run(&["pin", &rel, "-n", &ns, "--dry-run=client", "-o", "wide"]);
    out.assert_code(0);
    assert!(
        out.stdout
            .contains(&format!("{image}@{}", bed.seeded_digest(REPO, TAG))),
        "plan shows targets: {}",
        out.stdout
    );
    assert_eq!(images(&bed, &ns), before);
    assert_eq!(annotated(&bed, &ns), 0);
}

#[test]
fn a_writer_between_plan_and_apply_is_not_overwritten() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, image) = release(&bed, "race", "Deployment");
    // Someone moves the webserver to another tag meanwhile (the earlier object in apply order is
    // the scheduler Deployment, then the webserver: webserver sorts after scheduler).
    let theirs = format!("{}/{REPO}:12.2.0", bed.reg_token);
    let out = pin_with_a_writer_in_the_pause(&bed, &ns, &rel, || {
        let o = bed.kubectl(&[
            "set",
            "image",
            &format!("deployment/{rel}-webserver"),
            &format!("webserver={theirs}"),
            "-n",
            &ns,
        ]);
        assert!(o.ok(), "{}", o.stderr);
    });
    out.assert_code(2);
    assert!(
        out.stderr.contains("changed since the plan")
            && out.stderr.contains(&format!(
                "rolled back: deployment/{rel}-scheduler; left as it was: configmap/{rel}-config"
            )),
        "{}",
        out.stderr
    );
    let (imgs, template) = images(&bed, &ns);
    let web = imgs
        .iter()
        .find(|(p, _)| p.ends_with("-webserver/webserver"))
        .unwrap();
    assert_eq!(web.1, theirs, "their write survives");
    // The rest of the release was rolled back: nothing stays pinned.
    for (p, i) in &imgs {
        if !p.contains("statsd") && !p.ends_with("-webserver/webserver") {
            assert_eq!(i, &image, "{p} rolled back");
        }
    }
    assert!(!template.contains("@sha256:"));
    assert_eq!(annotated(&bed, &ns), 0, "no bookkeeping left behind");
}

#[test]
fn forbidden_statefulsets_stop_the_pin_and_roll_back() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, image) = release(&bed, "rbac", "StatefulSet");
    let user = "limited2";
    // Everything pin needs, except patching StatefulSets.
    bed.apply(&format!(
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: pin-no-sts, namespace: {ns}}}
rules:
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "patch"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["list"]
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["list"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["list", "patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: pin-no-sts, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: pin-no-sts}}
subjects:
- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: {user}}}
"#
    ));
    let ctx = format!("testbed-{user}");
    // The pre-check refuses before any write.
    let out = bed.run(&["pin", &rel, "-n", &ns, "--yes", "--context", &ctx]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("statefulsets") && out.stderr.contains("nothing was changed"),
        "{}",
        out.stderr
    );
    assert_untouched(&bed, &ns, &image);
    // Without the pre-check the write fails mid-release and the Deployment already patched is rolled back.
    let out = bed.run(&[
        "pin",
        &rel,
        "-n",
        &ns,
        "--yes",
        "--context",
        &ctx,
        "--skip-access-check",
    ]);
    out.assert_code(2);
    assert!(
        out.stderr.contains(&format!(
            "rolled back: deployment/{rel}-webserver; left as it was: configmap/{rel}-config"
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("forbidden"), "{}", out.stderr);
    assert_untouched(&bed, &ns, &image);
}

#[test]
fn least_privilege_role_is_enough() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, image) = release(&bed, "leastpriv", "StatefulSet");
    let role = std::fs::read_to_string(support::repo_root().join("docs/rbac/pin.yaml"))
        .unwrap()
        .replace("NAMESPACE", &ns)
        .replace("USER", "limited3");
    bed.apply(&role);
    let out = bed.run(&[
        "pin",
        &rel,
        "-n",
        &ns,
        "--yes",
        "--context",
        "testbed-limited3",
    ]);
    out.assert_code(0);
    let pinned = format!("{image}@{}", bed.seeded_digest(REPO, TAG));
    assert_pinned(&bed, &ns, &pinned);
    let out = bed.run(&[
        "unpin",
        &rel,
        "-n",
        &ns,
        "--yes",
        "--context",
        "testbed-limited3",
    ]);
    out.assert_code(0);
    assert_untouched(&bed, &ns, &image);
}

#[test]
fn bad_input_changes_nothing() {
    let Some(bed) = Bed::get() else { return };
    // Unknown release.
    let out = bed.run(&["pin", "no-such-release-zz", "--yes"]);
    out.assert_code(2);
    assert!(out.stderr.contains("no-such-release-zz"), "{}", out.stderr);
    // An unresolvable tag: nothing of that release is written.
    let ns = bed.namespace("badtag");
    let image = format!("{}/{REPO}:0.0.0-missing", bed.reg_token);
    bed.apply(&airflow_release_yaml(
        &ns,
        "badtag-rel",
        &image,
        "Deployment",
    ));
    let out = bed.run(&["pin", "badtag-rel", "-n", &ns, "--yes"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("0.0.0-missing") && out.stderr.contains("nothing was changed"),
        "{}",
        out.stderr
    );
    assert_untouched(&bed, &ns, &image);
    // No Runtime container at all.
    let ns2 = bed.namespace("noruntime");
    bed.apply(&airflow_release_yaml(
        &ns2,
        "plain-rel",
        "quay.io/prometheus/statsd-exporter:v0.26.1",
        "Deployment",
    ));
    let out = bed.run(&["pin", "plain-rel", "-n", &ns2, "--yes"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("no Runtime container"),
        "{}",
        out.stderr
    );
    // Neither release nor --all.
    bed.run(&["pin"]).assert_code(2);
}

#[test]
fn unpin_refuses_an_image_changed_since_the_pin() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, image) = release(&bed, "unpinchg", "Deployment");
    bed.run(&["pin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    let other = format!("{}/{REPO}:12.2.0", bed.reg_token);
    assert!(bed
        .kubectl(&[
            "set",
            "image",
            &format!("deployment/{rel}-webserver"),
            &format!("webserver={other}"),
            "-n",
            &ns
        ])
        .ok());
    assert_eq!(
        annotated(&bed, &ns),
        3,
        "scheduler, webserver, pod template carry their record"
    );
    // The webserver's record is stale (issue 10 §1): that container is refused (exit 1), its
    // image and record left as they are; the other containers are unpinned.
    let out = bed.run(&["unpin", &rel, "-n", &ns, "--yes"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("container webserver: stale record") && out.stderr.contains("--force"),
        "{}",
        out.stderr
    );
    let (imgs, template) = images(&bed, &ns);
    for (p, i) in imgs.iter().filter(|(p, _)| !p.contains("statsd")) {
        let want = if p.ends_with("-webserver/webserver") {
            &other
        } else {
            &image
        };
        assert_eq!(i, want, "{p}");
    }
    assert!(
        template.contains(&format!("image: {image}   # the Runtime")),
        "{template}"
    );
    assert_eq!(
        annotated(&bed, &ns),
        1,
        "only the refused webserver keeps its record"
    );
    let out = bed.run(&["unpin", &rel, "-n", &ns, "--yes", "--force"]);
    out.assert_code(0);
    assert_untouched(&bed, &ns, &image);
}

#[test]
fn moved_tag_keeps_its_pin_unless_repin() {
    let Some(bed) = Bed::get() else { return };
    let ns = bed.namespace("repin");
    let repo = format!("astro-sha-tests/{ns}/astro-runtime");
    let first = bed.push(
        &format!("{}/{repo}:1.0.0", bed.reg_plain),
        "oci-manifest",
        "first",
    );
    let image = format!("{}/{repo}:1.0.0", bed.reg_token);
    bed.apply(&airflow_release_yaml(
        &ns,
        "repin-rel",
        &image,
        "Deployment",
    ));
    bed.run(&["pin", "repin-rel", "-n", &ns, "--yes"])
        .assert_code(0);
    let second = bed.push(
        &format!("{}/{repo}:1.0.0", bed.reg_plain),
        "oci-manifest",
        "second",
    );
    assert_ne!(first, second);
    // JSON: the table's word as a stable action, the sentence as the reason (issue 23)
    let json = bed.run(&[
        "pin",
        "repin-rel",
        "-n",
        &ns,
        "--dry-run=client",
        "-o",
        "json",
    ]);
    json.assert_code(0);
    for row in json.json()["plan"].as_array().unwrap() {
        if row["from"].as_str().is_some_and(|f| f.contains("statsd")) {
            continue;
        }
        assert_eq!(row["action"], "keep", "{row}");
        assert_eq!(
            row["reason"],
            format!("the tag now points to {second}; the pin is kept (--repin moves it)"),
            "{row}"
        );
    }
    let out = bed.run(&["pin", "repin-rel", "-n", &ns, "--yes", "-o", "wide"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("kept: tag now points to"),
        "{}",
        out.stdout
    );
    assert_pinned(&bed, &ns, &format!("{image}@{first}"));
    bed.run(&["show", "repin-rel", "-n", &ns, "--check"])
        .assert_code(1);
    bed.run(&["pin", "repin-rel", "-n", &ns, "--yes", "--repin"])
        .assert_code(0);
    assert_pinned(&bed, &ns, &format!("{image}@{second}"));
    // The records still name the tag the user had as the original, and the new pin.
    for object in [
        "deployment/repin-rel-scheduler",
        "deployment/repin-rel-webserver",
        "configmap/repin-rel-config",
    ] {
        let rec = records(&bed, &ns, object);
        let rec = rec.as_object().expect("records object");
        assert!(!rec.is_empty(), "{object}");
        for (key, r) in rec {
            assert_eq!(r["original"], image.as_str(), "{object} {key}");
            assert_eq!(r["pinned"], format!("{image}@{second}"), "{object} {key}");
        }
    }
    // unpin still restores the tag the user had.
    bed.run(&["unpin", "repin-rel", "-n", &ns, "--yes"])
        .assert_code(0);
    assert_untouched(&bed, &ns, &image);
}

#[test]
fn values_out_writes_chart_values_and_touches_nothing() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, _) = release(&bed, "values", "Deployment");
    let before = images(&bed, &ns);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("v.yaml");
    bed.run(&[
        "pin",
        &rel,
        "-n",
        &ns,
        "--values-out",
        file.to_str().unwrap(),
    ])
    .assert_code(0);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!("digest: \"{}\"", bed.seeded_digest(REPO, TAG))),
        "{text}"
    );
    assert!(
        text.contains(&format!("repository: {}/{REPO}\n", bed.reg_token)),
        "{text}"
    );
    assert_eq!(images(&bed, &ns), before);
}

#[test]
fn from_configmap_uses_houstons_digests_and_reports_disagreement() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, image) = release(&bed, "fromcm", "Deployment");
    let platform = bed.namespace("fromcm-plat");
    // The releases ConfigMap says 12.1.0 is the digest the registry gives 12.2.0: a disagreement.
    let houstons = bed.seeded_digest(REPO, "12.2.0");
    let catalog = format!(
        r#"{{"version":"1.0","runtimeVersions":{{"12.1.0":{{"metadata":{{"channel":"stable"}},"digest":{{"value":"{houstons}"}}}}}},"runtimeVersionsV3":{{}}}}"#
    );
    let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "astro-runtime-base-images", "namespace": &*platform,
            "annotations": {"astro-sha.astronomer.io/digest-field": "digest.value"}},
        "data": {"astro_runtime_releases.json": catalog}});
    bed.apply(&cm.to_string());
    // Houston must be findable in the platform namespace.
    bed.apply(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: astronomer-houston\n  namespace: {platform}\n  labels: {{component: houston, release: astronomer}}\nspec:\n  selector:\n    matchLabels: {{component: houston}}\n  template:\n    metadata:\n      labels: {{component: houston}}\n    spec:\n      containers:\n      - name: houston\n        image: quay.io/astronomer/ap-houston-api:0.37.4\n"
    ));
    let out = bed.run(&[
        "pin",
        &rel,
        "-n",
        &ns,
        "--yes",
        "--from-configmap",
        "--platform-namespace",
        &platform,
    ]);
    out.assert_code(0);
    assert!(
        out.stderr.contains("releases ConfigMap says")
            && out.stderr.contains("using the ConfigMap's"),
        "{}",
        out.stderr
    );
    let (imgs, _) = images(&bed, &ns);
    for (p, i) in imgs.iter().filter(|(p, _)| !p.contains("statsd")) {
        assert_eq!(i, &format!("{image}@{houstons}"), "{p}");
    }
    // A tag the ConfigMap lacks stops the run with nothing written.
    let (ns2, rel2, _) = release(&bed, "fromcm2", "Deployment");
    let image2 = format!("{}/{REPO}:12.2.0", bed.reg_token);
    bed.apply(&support::airflow_release_yaml(
        &ns2,
        &rel2,
        &image2,
        "Deployment",
    ));
    let out = bed.run(&[
        "pin",
        &rel2,
        "-n",
        &ns2,
        "--yes",
        "--from-configmap",
        "--platform-namespace",
        &platform,
    ]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("no digest in the releases ConfigMap"),
        "{}",
        out.stderr
    );
    assert_untouched(&bed, &ns2, &image2);
}

#[test]
fn cronjobs_are_pinned_with_the_version_the_server_serves() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, image) = release(&bed, "cron", "Deployment");
    // 1.20 serves CronJob as batch/v1beta1 only; newer servers as batch/v1.
    let versions = bed.kubectl(&["api-versions"]).stdout;
    let api = if versions.lines().any(|l| l == "batch/v1beta1") {
        "batch/v1beta1"
    } else {
        "batch/v1"
    };
    bed.apply(&format!(
        "apiVersion: {api}\nkind: CronJob\nmetadata:\n  name: {rel}-cleanup\n  namespace: {ns}\n  labels: {{tier: airflow, component: airflow-cleanup-pods, release: {rel}}}\nspec:\n  schedule: \"*/15 * * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers:\n          - name: airflow-cleanup-pods\n            image: {image}\n"
    ));
    bed.run(&["pin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    let cj = bed.get_json(&["cronjobs.batch", &format!("{rel}-cleanup"), "-n", &ns]);
    let got = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(got, format!("{image}@{}", bed.seeded_digest(REPO, TAG)));
    bed.run(&["unpin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    let cj = bed.get_json(&["cronjobs.batch", &format!("{rel}-cleanup"), "-n", &ns]);
    assert_eq!(
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"],
        image.as_str()
    );
}

#[test]
fn an_object_deleted_between_plan_and_apply_stops_the_release() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, image) = release(&bed, "gone", "Deployment");
    let out = pin_with_a_writer_in_the_pause(&bed, &ns, &rel, || {
        let o = bed.kubectl(&[
            "delete",
            "deployment",
            &format!("{rel}-webserver"),
            "-n",
            &ns,
        ]);
        assert!(o.ok(), "{}", o.stderr);
    });
    out.assert_code(2);
    assert!(
        out.stderr.contains("deleted since the plan"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "rolled back: deployment/{rel}-scheduler; left as it was: configmap/{rel}-config"
        )),
        "{}",
        out.stderr
    );
    // The scheduler's three containers and the pod template are back on the tag, no records.
    let (imgs, template) = runtime_images(&bed, &ns);
    assert_eq!(imgs.len(), 3, "{imgs:?}");
    for (p, i) in &imgs {
        assert_eq!(i, &image, "{p}");
    }
    assert!(
        template.contains(&format!("image: {image}   # the Runtime")),
        "{template}"
    );
    assert_eq!(annotated(&bed, &ns), 0, "no bookkeeping annotation left");
    assert!(
        images(&bed, &ns)
            .0
            .iter()
            .all(|(p, _)| !p.contains("-webserver/")),
        "the webserver stays deleted"
    );
}

#[test]
fn warns_when_houston_would_put_the_tags_back() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, _) = release(&bed, "warn", "Deployment");
    // The bed's platform runs Houston with the feature off.
    let out = bed.run(&[
        "pin",
        &rel,
        "-n",
        &ns,
        "--yes",
        "--platform-namespace",
        "astronomer",
    ]);
    out.assert_code(0);
    assert!(
        out.stderr.contains("customImageSha feature is not enabled"),
        "{}",
        out.stderr
    );
}

/// At fleet size (more than ten releases) the plan before the question fits a screen in table
/// output: no row per container on stdout, one line saying what the plan holds and where to see
/// it whole, then the compact summary; `-o wide` lists every container of every release.
#[test]
fn at_fleet_size_the_plan_is_one_line_and_wide_lists_every_container() {
    let Some(bed) = Bed::get() else { return };
    let ns = bed.namespace("fleet-plan");
    let image = format!("{}/{REPO}:{TAG}", bed.reg_token);
    let releases: Vec<String> = (0..11).map(|i| format!("fp-{i:02}")).collect();
    let yaml: Vec<String> = releases
        .iter()
        .map(|r| airflow_release_yaml(&ns, r, &image, "Deployment"))
        .collect();
    bed.apply(&yaml.join("\n---\n"));
    // Each release: its Runtime containers and the pod template's.
    let containers = 11 * (RUNTIME_CONTAINERS + 1);
    let out = bed.run(&["pin", "--all", "-n", &ns, "--dry-run"]);
    out.assert_code(0);
    assert_eq!(out.stdout, "", "no table at fleet size");
    assert!(
        out.stderr.starts_with(&format!(
            "Plan: {containers} container(s) in 11 release(s); -o wide lists each container, -o json carries the whole plan.\nSummary: pin "
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.lines().count() <= 18, "{}", out.stderr);
    let wide = bed.run(&["pin", "--all", "-n", &ns, "--dry-run", "-o", "wide"]);
    wide.assert_code(0);
    assert_eq!(
        wide.stdout.lines().count(),
        1 + containers,
        "{}",
        wide.stdout
    );
    for rel in &releases {
        assert!(
            wide.stdout.contains(&format!("{rel}-webserver")),
            "{rel}: {}",
            wide.stdout
        );
    }
    assert!(!wide.stderr.contains("Plan: "), "{}", wide.stderr);
}
