//! `pin --values-out` writes the build the live pin applies, on the bed (issue 24). The values file
//! of a release is decided from the pin plan (`core::values_out::release_images`), so a moved tag's
//! partial pin, `--repin` and `--digest-source running` give the file exactly the digest the
//! cluster gets; a release whose Runtime containers would run two images is refused by name and
//! no file is touched.
//!
//! Before, `write_values` took the first Runtime container it met and re-derived a digest with its
//! own precedence (container digest, else ConfigMap, else registry): a tag-only scheduler listed
//! before a pinned webserver gave the file the tag's new build, the one the plan refused; two
//! versions in one release silently gave the first one's.

use crate::pin::{images, release, REPO, TAG};
use crate::pin_upgrade::release_with_a_moved_tag;
use crate::support::{self, Bed, Out};

/// The tag the seeded bed also holds (a second Runtime version).
const OTHER_TAG: &str = "12.2.0";

/// The `digest:` of a values file `pin --values-out` wrote.
#[track_caller]
fn digest_in(file: &std::path::Path) -> String {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("values are YAML");
    v["images"]["airflow"]["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("no images.airflow.digest in {text}"))
        .to_string()
}

/// The Runtime images of the namespace's workloads and pod template all end in `@digest`.
#[track_caller]
fn assert_live_on(bed: &Bed, ns: &str, digest: &str) {
    let (imgs, template) = images(bed, ns);
    let runtime: Vec<_> = imgs.iter().filter(|(p, _)| !p.contains("statsd")).collect();
    assert!(!runtime.is_empty());
    for (p, i) in runtime {
        assert!(i.ends_with(&format!("@{digest}")), "{p}: {i}, not {digest}");
    }
    assert!(
        template.contains(&format!("@{digest}   # the Runtime")),
        "{template}"
    );
}

/// `pin --values-out file` with `extra` flags.
fn values_out(bed: &Bed, rel: &str, ns: &str, file: &std::path::Path, extra: &[&str]) -> Out {
    let mut args = vec!["pin", rel, "-n", ns, "--values-out", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    bed.run(&args)
}

/// The case of the issue: the webserver pinned to the first build of a tag, the scheduler and
/// the pod template on the tag, the tag now on a second build. The plan gives the tag-only
/// containers the release's (first) build; the file says the same, and after the live pin the
/// cluster runs what the file says. With `--repin` both move to the second build.
#[test]
fn a_moved_tag_partial_pin_writes_the_build_the_live_pin_applies() {
    let Some(bed) = Bed::get() else { return };
    let ns = bed.namespace("vo-moved");
    let rel = "vo-moved";
    let (_image, first, second) = release_with_a_moved_tag(&bed, &ns, rel);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("v.yaml");
    let out = values_out(&bed, rel, &ns, &file, &["--dry-run=client"]);
    out.assert_code(0);
    assert!(out.stderr.contains("moved"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("release {rel}: {}", &first[..19])),
        "{}",
        out.stderr
    );
    assert_eq!(digest_in(&file), first, "the release's build, as the plan");
    let before = images(&bed, &ns);

    // --repin: the plan moves the whole release to the tag's current build; so does the file.
    let repinned = dir.path().join("repin.yaml");
    values_out(&bed, rel, &ns, &repinned, &["--repin"]).assert_code(0);
    assert_eq!(digest_in(&repinned), second);
    assert_eq!(images(&bed, &ns), before, "--values-out writes no object");

    // The live pin applies what the file said.
    bed.run(&["pin", rel, "-n", &ns, "--yes"]).assert_code(0);
    assert_live_on(&bed, &ns, &first);
    // Fully pinned now, the tag still moved: the file keeps the release's pins, like the pin.
    let kept = dir.path().join("kept.yaml");
    values_out(&bed, rel, &ns, &kept, &[]).assert_code(0);
    assert_eq!(digest_in(&kept), first);
    bed.run(&["pin", rel, "-n", &ns, "--yes", "--repin"])
        .assert_code(0);
    assert_live_on(&bed, &ns, &second);
}

/// A pod of `rel`'s `component` whose init containers and containers all report `digest` (of
/// the seeded Runtime repository) as their imageID, written through `pods/status`.
fn pod_running(
    bed: &Bed,
    ns: &str,
    rel: &str,
    (component, i): (&str, usize),
    (init, main): (&[&str], &[&str]),
    digest: &str,
) {
    let name = format!("{rel}-{component}-{i}");
    let spec = |names: &[&str]| -> Vec<serde_json::Value> {
        names
            .iter()
            .map(|c| serde_json::json!({"name": c, "image": "placeholder"}))
            .collect()
    };
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns,
            "labels": {"tier": "airflow", "component": component, "release": rel}},
        "spec": {"automountServiceAccountToken": false, "initContainers": spec(init),
            "containers": spec(main)}
    });
    bed.apply(&pod.to_string());
    let id = format!("docker-pullable://{}/{REPO}@{digest}", bed.reg_token);
    let status = |names: &[&str]| -> Vec<serde_json::Value> {
        names
            .iter()
            .map(|c| {
                serde_json::json!({"name": c, "image": "placeholder", "imageID": id,
                    "ready": true, "restartCount": 0})
            })
            .collect()
    };
    let patch = serde_json::json!({"status": {"initContainerStatuses": status(init),
        "containerStatuses": status(main)}});
    bed.set_pod_status(ns, &name, &patch);
}

const SCHEDULER: (&[&str], &[&str]) = (
    &["wait-for-airflow-migrations"],
    &["scheduler", "scheduler-log-groomer"],
);
const WEBSERVER: (&[&str], &[&str]) = (&[], &["webserver"]);

/// `--digest-source running`: the pods run 12.2.0's build under the tag 12.1.0 (the tag is not
/// asked): the file freezes the pods' build, as the live pin does. Pods that disagree make the
/// plan refuse their rows; then no file is written and the one there is left as it is. Before,
/// `--values-out` refused `--digest-source running` outright.
#[test]
fn digest_source_running_writes_what_the_pods_run() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, _image) = release(&bed, "vo-running", "Deployment");
    let runs = bed.seeded_digest(REPO, OTHER_TAG);
    assert_ne!(runs, bed.seeded_digest(REPO, TAG));
    pod_running(&bed, &ns, &rel, ("scheduler", 0), SCHEDULER, &runs);
    pod_running(&bed, &ns, &rel, ("webserver", 0), WEBSERVER, &runs);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("v.yaml");
    let running = ["--digest-source", "running"];
    let out = values_out(&bed, &rel, &ns, &file, &running);
    out.assert_code(0);
    assert_eq!(digest_in(&file), runs);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(&format!("tag: \"{TAG}\"")), "{text}");

    // A second webserver pod on another build: its row is refused, so is the file.
    let other = bed.seeded_digest(REPO, TAG);
    pod_running(&bed, &ns, &rel, ("webserver", 1), WEBSERVER, &other);
    let out = values_out(&bed, &rel, &ns, &file, &[&running[..], &["--yes"]].concat());
    out.assert_code(2);
    assert!(
        out.stderr.contains(&format!("release {rel} ({ns})"))
            && out
                .stderr
                .contains("container webserver: refused: its pods run 2 different builds")
            && out.stderr.contains("nothing was written")
            && out.stderr.contains("hint:"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        text,
        "file untouched"
    );

    // The pods agree again: the live pin freezes the build the file pinned.
    let o = bed.kubectl(&["delete", "pod", &format!("{rel}-webserver-1"), "-n", &ns]);
    assert!(o.ok(), "{}", o.stderr);
    let mut pin = vec!["pin", rel.as_str(), "-n", &ns, "--yes"];
    pin.extend(running);
    bed.run(&pin).assert_code(0);
    assert_live_on(&bed, &ns, &runs);
}

/// A release whose webserver was moved to 12.2.0 by hand while the rest runs 12.1.0: the chart's
/// values hold one image, so the release is refused by name with both versions and their
/// workloads listed, exit 2, and no file is created or changed, not even another release's.
#[test]
fn a_release_on_two_versions_is_refused_and_no_file_is_touched() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel, image) = release(&bed, "vo-split", "StatefulSet");
    let newer = format!("{}/{REPO}:{OTHER_TAG}", bed.reg_token);
    let o = bed.kubectl(&[
        "set",
        "image",
        &format!("deployment/{rel}-webserver"),
        &format!("webserver={newer}"),
        "-n",
        &ns,
    ]);
    assert!(o.ok(), "{}", o.stderr);
    // A second release in the namespace, on one version: it could be written, but is not.
    let good = "vo-split-good";
    bed.apply(&support::airflow_release_yaml(
        &ns,
        good,
        &image,
        "Deployment",
    ));
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("values-{release}.yaml");
    let out = bed.run(&[
        "pin",
        &rel,
        good,
        "-n",
        &ns,
        "--yes",
        "--values-out",
        template.to_str().unwrap(),
    ]);
    out.assert_code(2);
    assert!(
        out.stderr.contains(&format!(
            "--values-out: release {rel} ({ns}): its Runtime containers run 2 different images: {image}@"
        )) && out.stderr.contains(&format!("{newer}@"))
            && out.stderr.contains(&format!("(deployment/{rel}-webserver)"))
            && out.stderr.contains(&format!("statefulset/{rel}-scheduler"))
            && out.stderr.contains("nothing was written")
            && out.stderr.contains("hint:")
            && out.stderr.contains("one Runtime version"),
        "{}",
        out.stderr
    );
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(files.is_empty(), "no file written: {files:?}");

    // An existing file of the user's stays as it is.
    let mine = support::write_file(dir.path(), "mine.yaml", "# mine\n");
    let out = values_out(&bed, &rel, &ns, &mine, &["--yes"]);
    out.assert_code(2);
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "# mine\n");
    // The release on one version alone is written.
    values_out(&bed, good, &ns, &mine, &["--yes"]).assert_code(0);
    assert_eq!(digest_in(&mine), bed.seeded_digest(REPO, TAG));
}
