//! Which build pin writes and unpin restores when the platform and the registry move under them,
//! on the bed: a platform upgrade between pin and unpin (the stale record is replaced by pin, and
//! refused by unpin unless `--force`), one build per Runtime version inside a release when a tag
//! has moved, and `--digest-source running` freezing only what every pod agrees on (from
//! issue 10).
//!
//! Platform facts these scenarios stand on (https://www.astronomer.io/docs/astro-private-cloud/create-deployment-sha, the airflow chart):
//! - Houston/Commander re-renders a Deployment through Helm on every update (a platform upgrade
//!   of the Runtime version included); Helm 3's three-way strategic merge sets what the chart
//!   renders (the images, the whole pod_template_file.yaml of `<release>-config`) and keeps what
//!   it does not render (this tool's `astro-sha.github.io/original-images` annotation).
//!   `Bed::houston_upgrade` does exactly that.
//! - The Runtime image appears in main, init and sidecar containers and in the pod template.
//! - Pod `status.containerStatuses[].imageID` holds the digest a node actually pulled; the bed
//!   has no kubelet, so the tests write it through the `pods/status` subresource.

use crate::pin::{annotated, assert_all_on, records, release, runtime_images, REPO, TAG};
use crate::support::{airflow_release_yaml, Bed};

/// The tag the platform upgrades the release to (seeded on the bed like 12.1.0).
const NEW_TAG: &str = "12.2.0";

#[test]
fn pin_upgrade_pin_unpin_restores_the_upgraded_tag_not_the_old_one() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, old) = release(&bed, "upgrade-repin", "StatefulSet");
    let repo = format!("{}/{REPO}", bed.reg_token);
    let new = format!("{repo}:{NEW_TAG}");
    bed.run(&["pin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    let up = bed.houston_upgrade(&ns, &rel, &repo, &new);
    assert_eq!(up.containers.len(), 4, "{:?}", up.containers);
    assert!(up.pod_template);
    assert_eq!(annotated(&bed, &ns), 3, "helm's merge kept every record");

    // show and status see the stale records (typed in JSON).
    let show = bed.run(&["show", &rel, "-n", &ns, "-o", "json"]);
    show.assert_code(0);
    let items = show.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 5);
    for i in &items {
        assert_eq!(i["record"], "stale", "{i}");
    }
    let show = bed.run(&["show", &rel, "-n", &ns]);
    assert!(
        show.stderr
            .contains("5 containers carry a stale original-images record"),
        "{}",
        show.stderr
    );
    let status = bed.run(&["status", "-n", &ns, "--platform-namespace", "astronomer"]);
    assert!(
        status.stdout.contains(&format!(
            "{ns}/{rel}: 5 containers carry a stale original-images record"
        )),
        "{}\n{}",
        status.stdout,
        status.stderr
    );

    // pin again: the records now say 12.2.0 is the original.
    bed.run(&["pin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    let digest = bed.seeded_digest(REPO, NEW_TAG);
    assert_all_on(&bed, &ns, &format!("{new}@{digest}"));
    // One record per Runtime container (three in the scheduler, one in the webserver) and one
    // for the pod template.
    for (object, count) in [
        (format!("statefulset/{rel}-scheduler"), 3),
        (format!("deployment/{rel}-webserver"), 1),
        (format!("configmap/{rel}-config"), 1),
    ] {
        let rec = records(&bed, &ns, &object);
        let rec = rec.as_object().expect("records object");
        assert_eq!(rec.len(), count, "{object}: {rec:?}");
        for (key, r) in rec {
            assert_eq!(r["original"], new.as_str(), "{object} {key}");
            assert_eq!(r["pinned"], format!("{new}@{digest}"), "{object} {key}");
        }
    }
    // unpin puts the upgraded tag back, never the 12.1.0 of the first pin.
    bed.run(&["unpin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    assert_all_on(&bed, &ns, &new);
    assert_ne!(new, old);
    assert_eq!(annotated(&bed, &ns), 0);
}

#[test]
fn unpin_after_an_upgrade_refuses_stale_records_unless_forced() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, old) = release(&bed, "upgrade-unpin", "Deployment");
    let repo = format!("{}/{REPO}", bed.reg_token);
    let new = format!("{repo}:{NEW_TAG}");
    bed.run(&["pin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    bed.houston_upgrade(&ns, &rel, &repo, &new);
    let before = (runtime_images(&bed, &ns), annotated(&bed, &ns));

    let out = bed.run(&["unpin", &rel, "-n", &ns, "--yes"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("stale record")
            && out.stderr.contains("--force")
            && out.stderr.contains("container webserver: stale record"),
        "{}",
        out.stderr
    );
    assert_eq!(
        (runtime_images(&bed, &ns), annotated(&bed, &ns)),
        before,
        "a refused unpin writes nothing, records included"
    );
    assert_all_on(&bed, &ns, &new);

    // --force restores the recorded original, as asked.
    bed.run(&["unpin", &rel, "-n", &ns, "--yes", "--force"])
        .assert_code(0);
    assert_all_on(&bed, &ns, &old);
    assert_eq!(annotated(&bed, &ns), 0);
}

/// Pushes a first build of `1.0.0` to a repository of the test's own, pins the webserver to it
/// by hand, then pushes a second build under the same tag.
pub(crate) fn release_with_a_moved_tag(bed: &Bed, ns: &str, rel: &str) -> (String, String, String) {
    let repo = format!("astro-sha-tests/{ns}/astro-runtime");
    let first = bed.push(
        &format!("{}/{repo}:1.0.0", bed.reg_plain),
        "oci-manifest",
        "first",
    );
    let image = format!("{}/{repo}:1.0.0", bed.reg_token);
    bed.apply(&airflow_release_yaml(ns, rel, &image, "Deployment"));
    let o = bed.kubectl(&[
        "set",
        "image",
        &format!("deployment/{rel}-webserver"),
        &format!("webserver={image}@{first}"),
        "-n",
        ns,
    ]);
    assert!(o.ok(), "{}", o.stderr);
    let second = bed.push(
        &format!("{}/{repo}:1.0.0", bed.reg_plain),
        "oci-manifest",
        "second",
    );
    assert_ne!(first, second);
    (image, first, second)
}

#[test]
fn a_moved_tag_gets_the_build_the_release_already_pins() {
    let Some(bed) = Bed::get() else { return };
    let ns = bed.namespace("movedtag");
    let (image, first, second) = release_with_a_moved_tag(&bed, &ns, "moved-rel");
    let out = bed.run(&["pin", "moved-rel", "-n", &ns, "--yes"]);
    out.assert_code(0);
    assert!(
        out.stderr.contains(&format!("tag {image} moved"))
            && out.stderr.contains("--repin moves the whole release"),
        "{}",
        out.stderr
    );
    // webserver pinned to the first build, tag-only scheduler and pod template: all on the first.
    assert_all_on(&bed, &ns, &format!("{image}@{first}"));
    // --repin moves them all together to the tag's current build.
    bed.run(&["pin", "moved-rel", "-n", &ns, "--yes", "--repin"])
        .assert_code(0);
    assert_all_on(&bed, &ns, &format!("{image}@{second}"));
    let _ = second;
}

/// Creates `n` pods of a workload (labels as its selector) whose containers report `ids`
/// (`container name -> imageID`) through the `pods/status` subresource.
fn pods(bed: &Bed, ns: &str, rel: &str, component: &str, ids: &[&[(&str, &str)]]) {
    for (i, statuses) in ids.iter().enumerate() {
        let name = format!("{rel}-{component}-{i}");
        let containers: Vec<serde_json::Value> = statuses
            .iter()
            .map(|(c, _)| serde_json::json!({"name": c, "image": "placeholder"}))
            .collect();
        let pod = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns,
                "labels": {"tier": "airflow", "component": component, "release": rel}},
            "spec": {"automountServiceAccountToken": false, "containers": containers}
        });
        bed.apply(&pod.to_string());
        let status: Vec<serde_json::Value> = statuses
            .iter()
            .map(|(c, id)| {
                serde_json::json!({"name": c, "image": "placeholder", "imageID": id,
                "ready": true, "restartCount": 0})
            })
            .collect();
        bed.set_pod_status(
            ns,
            &name,
            &serde_json::json!({"status": {"containerStatuses": status}}),
        );
    }
}

#[test]
fn digest_source_running_freezes_agreeing_pods_and_refuses_disagreeing_ones() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, image) = release(&bed, "running", "Deployment");
    // The webserver's pods agree on a build that is NOT what the tag points to now (12.2.0's
    // digest): freezing must take the pods' digest, not the registry's.
    let runs = bed.seeded_digest(REPO, NEW_TAG);
    let other = bed.seeded_digest(REPO, TAG);
    let id = |d: &str| format!("docker-pullable://{}/{REPO}@{d}", bed.reg_token);
    let (runs_id, other_id) = (id(&runs), id(&other));
    pods(
        &bed,
        &ns,
        &rel,
        "webserver",
        &[&[("webserver", &runs_id)], &[("webserver", &runs_id)]],
    );
    // The scheduler's two pods run different builds: its rows are refused.
    pods(
        &bed,
        &ns,
        &rel,
        "scheduler",
        &[
            &[("scheduler", &runs_id), ("scheduler-log-groomer", &runs_id)],
            &[
                ("scheduler", &other_id),
                ("scheduler-log-groomer", &runs_id),
            ],
        ],
    );
    // --repin cannot go with freezing what runs: refused before anything is read.
    let out = bed.run(&[
        "pin",
        &rel,
        "-n",
        &ns,
        "--yes",
        "--digest-source",
        "running",
        "--repin",
    ]);
    out.assert_code(2);
    assert!(out.stderr.contains("--repin"), "{}", out.stderr);
    assert_eq!(annotated(&bed, &ns), 0);
    let out = bed.run(&[
        "pin",
        &rel,
        "-n",
        &ns,
        "--yes",
        "--digest-source",
        "running",
    ]);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("container scheduler: its pods run 2 different builds"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("container wait-for-airflow-migrations: pod")
            && out.stderr.contains("reports no image digest"),
        "{}",
        out.stderr
    );
    let (imgs, template) = runtime_images(&bed, &ns);
    let frozen = format!("{image}@{runs}");
    for (p, i) in &imgs {
        let want = if p.ends_with("/webserver") || p.ends_with("/scheduler-log-groomer") {
            &frozen
        } else {
            &image
        };
        assert_eq!(i, want, "{p}");
    }
    // The pod template has no pods: it takes the build the release's pods agree on.
    assert!(
        template.contains(&format!("image: {frozen}   # the Runtime")),
        "{template}"
    );
    // The plan said the webserver keeps its running image.
    let web_row = out
        .stdout
        .lines()
        .find(|l| l.contains(&format!("deployment/{rel}-webserver")))
        .unwrap_or_default()
        .to_string();
    assert!(web_row.ends_with("same"), "{}", out.stdout);
}
