//! The goal state, shown (issue 25): with `customImageShaEnabled` on, Houston renders every
//! Airflow Deployment's Runtime image as `repository@sha256:<digest>`, without the tag (Astronomer's
//! "Create Deployments using Astro Runtime SHA256 digest"), from the releases ConfigMap it mounts.
//! `show`, `status` and the plan tables read that ConfigMap backwards (digest → version): the
//! version is shown as coming from the catalog, and the digest is checked against it. Each test
//! builds its own platform (Houston mounting its own releases ConfigMap) and passes
//! --platform-namespace, so the shared fixture is never touched; `Bed::houston_upgrade` does
//! Houston's re-rendering.

use serde_json::{json, Value};

use crate::pin::{annotated, images, release, REPO};
use crate::support::{self, airflow_release_yaml, Bed, Out};

const CM: &str = "astro-runtime-base-images";
/// A build no catalog lists.
const UNKNOWN: &str = "sha256:e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0";

/// A platform in its own namespace: Houston with the feature on, mounting a releases ConfigMap
/// at `/houston/astro_runtime_releases.json` (as the chart does), and that ConfigMap with
/// `catalog`. Houston's Deployment is deleted on drop, so discovery elsewhere finds one platform.
struct Plat<'a> {
    bed: &'a Bed,
    ns: support::TestNamespace,
}

impl Drop for Plat<'_> {
    fn drop(&mut self) {
        let _ = self.bed.kubectl(&[
            "-n",
            &self.ns,
            "delete",
            "deployment",
            "-l",
            "component=houston",
            "--wait=false",
        ]);
    }
}

fn platform<'a>(bed: &'a Bed, catalog: &Value) -> Plat<'a> {
    let ns = bed.namespace("hd-plat");
    let release = "hdplat";
    let labels = json!({"tier": "astronomer", "component": "houston", "release": release});
    let values = json!({"astronomer": {"houston": {"runtimeReleasesConfigMapName": CM,
        "config": {"deployments": {"customImageShaEnabled": true}}}}});
    let items = vec![
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": format!("{release}-houston"), "namespace": &*ns,
                "labels": {"tier": "astronomer", "component": "houston", "release": release, "chart": "astronomer-0.37.4"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "houston", "image": "quay.io/astronomer/ap-houston-api:0.37.4",
                        "volumeMounts": [{"name": "runtime-releases", "mountPath": "/houston/astro_runtime_releases.json", "subPath": "astro_runtime_releases.json"}]}],
                        "volumes": [{"name": "runtime-releases", "configMap": {"name": CM}}]}}}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("{release}-houston-config"), "namespace": &*ns},
            "data": {"production.yaml": "nodeEnv: production\n", "local-production.yaml": "deployments:\n  customImageShaEnabled: true\n"}}),
        crate::enable_status::helm_secret(&ns, release, 1, "deployed", "0.37.4", &values),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CM, "namespace": &*ns,
                "annotations": {"astro-sha.astronomer.io/imported-at": "2026-12-01T00:00:00Z"}},
            "data": {"astro_runtime_releases.json": catalog.to_string()}}),
    ];
    bed.apply(&json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string());
    Plat { bed, ns }
}

fn digest(bed: &Bed, tag: &str) -> String {
    bed.seeded_digest(REPO, tag)
}

/// The catalog as import writes it: 12.1.0 and 12.2.0 with the bed's seeded digests.
fn catalog(bed: &Bed) -> Value {
    json!({"version": "1.0", "runtimeVersions": {
        "12.1.0": {"metadata": {"airflowVersion": "2.10.4", "channel": "stable"}, "sha256": digest(bed, "12.1.0")},
        "12.2.0": {"metadata": {"airflowVersion": "2.10.5", "channel": "stable"}, "sha256": digest(bed, "12.2.0")}}})
}

fn show_json(bed: &Bed, rel: &str, ns: &str, plat: &Plat) -> (Vec<Value>, Out) {
    let o = bed.run(&[
        "show",
        rel,
        "-n",
        ns,
        "--platform-namespace",
        &plat.ns,
        "-o",
        "json",
    ]);
    o.assert_code(0);
    let items = o.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 5, "{items:?}");
    (items, o)
}

fn status_json(bed: &Bed, ns: &str, plat: &Plat) -> Value {
    let o = bed.run(&[
        "status",
        "--platform-namespace",
        &plat.ns,
        "-n",
        ns,
        "-o",
        "json",
    ]);
    o.assert_code(0);
    o.json()
}

/// A Deployment as Houston renders it with the feature on, after an import: every Runtime
/// container `repository@sha256:<the catalog's 12.2.0 digest>`. show gives the version, marked
/// as the catalog's, and calls it pinned (`--check` passes); status counts it as Houston
/// rendering digests, against a release on tags beside it.
#[test]
fn a_houston_rendered_deployment_shows_its_catalog_version_and_matches() {
    let Some(bed) = Bed::get() else { return };
    let plat = platform(&bed, &catalog(&bed));
    let ns = bed.namespace("hd-match");
    let image = format!("{}/{REPO}@{}", bed.reg_token, digest(&bed, "12.2.0"));
    bed.apply(&airflow_release_yaml(&ns, "hd-rel", &image, "Deployment"));
    // Its pods run that build (pods/status; the bed has no kubelet): --check needs to know.
    let runs = digest(&bed, "12.2.0");
    let sched = ["scheduler", "scheduler-log-groomer"];
    crate::exit_codes::running(&bed, &ns, "hd-rel", "scheduler", &sched, &runs);
    crate::exit_codes::running(&bed, &ns, "hd-rel", "webserver", &["webserver"], &runs);
    let tagged = format!("{}/{REPO}:12.1.0", bed.reg_token);
    bed.apply(&airflow_release_yaml(&ns, "hd-tags", &tagged, "Deployment"));

    let (items, _) = show_json(&bed, "hd-rel", &ns, &plat);
    for i in &items {
        assert_eq!(
            (
                &i["version"],
                &i["versionSource"],
                &i["catalog"],
                &i["status"]
            ),
            (
                &json!("12.2.0"),
                &json!("catalog"),
                &json!("listed"),
                &json!("pinned")
            ),
            "{i}"
        );
    }
    let o = bed.run(&[
        "show",
        "hd-rel",
        "-n",
        &ns,
        "--platform-namespace",
        &plat.ns,
    ]);
    o.assert_code(0);
    assert!(
        o.stdout.contains("12.2.0 (catalog)") && o.stdout.contains("pinned"),
        "{}",
        o.stdout
    );
    assert!(!o.stderr.contains("note:"), "{}", o.stderr);
    bed.run(&[
        "show",
        "hd-rel",
        "-n",
        &ns,
        "--platform-namespace",
        &plat.ns,
        "--check",
    ])
    .assert_code(0);
    // A tag's version comes from the tag.
    let o = bed.run(&["show", "hd-tags", "-n", &ns, "-o", "json"]);
    assert_eq!(o.json()["items"][0]["versionSource"], "tag");

    let v = status_json(&bed, &ns, &plat);
    let h = &v["houstonRendering"];
    assert_eq!(
        (
            &h["catalogDigests"],
            &h["tags"],
            &h["unknownBuilds"],
            &h["rendersDigests"]
        ),
        (&json!(1), &json!(1), &json!(0), &json!(true)),
        "{h}"
    );
    let o = bed.run(&["status", "--platform-namespace", &plat.ns, "-n", &ns]);
    assert!(
        o.stdout.contains("Houston renders digests: yes\n  Airflow Deployments on catalog digests: 1, on tags: 1, on builds the catalog does not list: 0\n"),
        "{}",
        o.stdout
    );

    // Only tags in scope, everything wired: no, and the hint why.
    let tags_only = bed.namespace("hd-tagsonly");
    bed.apply(&airflow_release_yaml(
        &tags_only,
        "hd-tags",
        &tagged,
        "Deployment",
    ));
    let h = status_json(&bed, &tags_only, &plat)["houstonRendering"].clone();
    assert_eq!(h["rendersDigests"], false, "{h}");
    assert!(
        h["whyNot"][0]
            .as_str()
            .unwrap()
            .starts_with("no Deployment was updated in Houston since the feature was turned on"),
        "{h}"
    );
}

/// pin --drop-tag from a registry whose 12.2.0 is the build the catalog lists for 12.1.0 (a
/// mirror pushed wrong): the record says 12.2.0, the catalog says 12.1.0. show says so, with
/// its own state; `--check` fails; status has the problem with its fix.
#[test]
fn a_digest_the_catalog_lists_for_another_version() {
    let Some(bed) = Bed::get() else { return };
    let registry_12_2 = digest(&bed, "12.2.0");
    let cat = json!({"version": "1.0", "runtimeVersions": {
        "12.1.0": {"metadata": {"channel": "stable"}, "sha256": registry_12_2},
        "12.2.0": {"metadata": {"channel": "stable"}, "sha256": digest(&bed, "12.1.0")}}});
    let plat = platform(&bed, &cat);
    let ns = bed.namespace("hd-other");
    let tag = format!("{}/{REPO}:12.2.0", bed.reg_token);
    bed.apply(&airflow_release_yaml(&ns, "hd-rel", &tag, "Deployment"));
    bed.run(&[
        "pin",
        "hd-rel",
        "-n",
        &ns,
        "--yes",
        "--drop-tag",
        "--platform-namespace",
        &plat.ns,
    ])
    .assert_code(0);

    let (items, o) = show_json(&bed, "hd-rel", &ns, &plat);
    for i in &items {
        assert_eq!(i["status"], "other-version", "{i}");
        assert_eq!(i["version"], "12.1.0", "{i}");
        assert_eq!(i["versionSource"], "catalog", "{i}");
        assert_eq!(i["expectedVersion"], "12.2.0", "{i}");
        assert_eq!(i["record"], "current", "{i}");
    }
    assert!(
        o.stderr.contains(
            "the releases catalog lists this build for 12.1.0, but it was pinned from 12.2.0"
        ),
        "{}",
        o.stderr
    );
    bed.run(&[
        "show",
        "hd-rel",
        "-n",
        &ns,
        "--platform-namespace",
        &plat.ns,
        "--check",
    ])
    .assert_code(1);
    let v = status_json(&bed, &ns, &plat);
    assert_eq!(v["deployments"]["byState"]["other-version"], 1, "{v}");
    assert_eq!(v["houstonRendering"]["unknownBuilds"], 1);
    assert!(
        v["problems"].to_string().contains(&format!(
            "kubectl astro-sha import --configmap {CM} (if the catalog predates this build)"
        )),
        "{}",
        v["problems"]
    );
}

/// A `repository@sha256` build the catalog does not list: no version, a state of its own with
/// the fix, in show (stderr) and status; `--check` fails.
#[test]
fn a_digest_the_catalog_does_not_list() {
    let Some(bed) = Bed::get() else { return };
    let plat = platform(&bed, &catalog(&bed));
    let ns = bed.namespace("hd-unlisted");
    let image = format!("{}/{REPO}@{UNKNOWN}", bed.reg_token);
    bed.apply(&airflow_release_yaml(&ns, "hd-rel", &image, "Deployment"));

    let (items, o) = show_json(&bed, "hd-rel", &ns, &plat);
    for i in &items {
        assert_eq!(
            (&i["status"], &i["catalog"], &i["version"]),
            (&json!("unlisted-build"), &json!("unlisted"), &Value::Null),
            "{i}"
        );
    }
    assert!(
        o.stderr
            .contains("a build the releases catalog lists for no Runtime version")
            && o.stderr.contains("hint: re-import the catalog"),
        "{}",
        o.stderr
    );
    let o = bed.run(&[
        "show",
        "hd-rel",
        "-n",
        &ns,
        "--platform-namespace",
        &plat.ns,
    ]);
    assert!(o.stdout.contains("unlisted-build"), "{}", o.stdout);
    bed.run(&[
        "show",
        "hd-rel",
        "-n",
        &ns,
        "--platform-namespace",
        &plat.ns,
        "--check",
    ])
    .assert_code(1);

    let v = status_json(&bed, &ns, &plat);
    assert_eq!(v["deployments"]["items"][0]["state"], "unlisted-build");
    let h = &v["houstonRendering"];
    assert_eq!(
        (
            &h["catalogDigests"],
            &h["unknownBuilds"],
            &h["rendersDigests"]
        ),
        (&json!(0), &json!(1), &json!(false)),
        "{h}"
    );
    assert_eq!(
        h["whyNot"],
        json!(["the repository@sha256 build of 1 Deployment is not the catalog's for its version (see the problems below)"])
    );
    let problem = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["problem"]
                .as_str()
                .unwrap()
                .contains("hd-rel: unlisted-build")
        })
        .cloned()
        .unwrap_or_else(|| panic!("{}", v["problems"]));
    assert!(
        problem["fix"]
            .as_str()
            .unwrap()
            .starts_with(&format!("kubectl astro-sha import --configmap {CM}")),
        "{problem}"
    );
}

/// pin wrote `repository:12.2.0@sha256:…` and its records; Houston (feature on) then re-rendered
/// the release as `repository@sha256:…`, the same build. The records are superseded by Houston,
/// not stale: show and status report no problem; unpin (even --force) leaves the containers
/// and their records exactly as they are, says so, and succeeds.
#[test]
fn a_pin_houston_rerendered_is_superseded_and_unpin_leaves_it() {
    let Some(bed) = Bed::get() else { return };
    let plat = platform(&bed, &catalog(&bed));
    let (ns, rel, _) = release(&bed, "hd-super", "Deployment");
    let repo = format!("{}/{REPO}", bed.reg_token);
    let pinned_digest = digest(&bed, crate::pin::TAG);
    bed.run(&["pin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    let up = bed.houston_upgrade(&ns, &rel, &repo, &format!("{repo}@{pinned_digest}"));
    assert_eq!(up.containers.len(), 4, "{:?}", up.containers);
    assert!(up.pod_template);
    assert_eq!(annotated(&bed, &ns), 3, "helm's merge kept every record");
    // Its pods run that build, so status has nothing unknown to report either.
    let sched = ["scheduler", "scheduler-log-groomer"];
    crate::exit_codes::running(&bed, &ns, &rel, "scheduler", &sched, &pinned_digest);
    crate::exit_codes::running(&bed, &ns, &rel, "webserver", &["webserver"], &pinned_digest);
    let before = (images(&bed, &ns), annotated(&bed, &ns));

    let (items, o) = show_json(&bed, &rel, &ns, &plat);
    for i in &items {
        assert_eq!(
            (&i["record"], &i["status"], &i["version"]),
            (
                &json!("superseded"),
                &json!("pinned"),
                &json!(crate::pin::TAG)
            ),
            "{i}"
        );
    }
    assert!(
        o.stderr.contains("superseded by Houston") && !o.stderr.contains("stale"),
        "{}",
        o.stderr
    );
    let v = status_json(&bed, &ns, &plat);
    assert_eq!(v["problems"], json!([]), "not a problem");
    assert_eq!(v["houstonRendering"]["catalogDigests"], 1);

    for force in [false, true] {
        let mut args = vec![
            "unpin",
            rel.as_str(),
            "-n",
            &ns,
            "--yes",
            "--platform-namespace",
            &plat.ns,
        ];
        if force {
            args.push("--force");
        }
        let o = bed.run(&args);
        o.assert_code(0);
        assert!(
            o.stderr.contains("unpin leaves 5 container(s) alone: Houston renders the build the pin wrote as repository@sha256 now"),
            "{}",
            o.stderr
        );
        assert!(!o.stderr.contains("refused"), "{}", o.stderr);
        assert!(
            o.stdout.contains("leave")
                && o.stdout.contains(&format!("{} (catalog)", crate::pin::TAG)),
            "{}",
            o.stdout
        );
        assert_eq!(
            (images(&bed, &ns), annotated(&bed, &ns)),
            before,
            "nothing written (force {force})"
        );
    }
}

/// A user who may list Houston's Deployment but not read ConfigMaps in the platform namespace:
/// show and status give today's output, with one note on stderr, never an error.
#[test]
fn without_read_access_to_the_configmap_show_falls_back_with_a_note() {
    let Some(bed) = Bed::get() else { return };
    let plat = platform(&bed, &catalog(&bed));
    let ns = bed.namespace("hd-rbac");
    let image = format!("{}/{REPO}@{}", bed.reg_token, digest(&bed, "12.2.0"));
    bed.apply(&airflow_release_yaml(&ns, "hd-rel", &image, "Deployment"));
    let user = "limited4";
    let role = |ns: &str, rules: &str| {
        format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: hd-reader, namespace: {ns}}}\nrules:\n{rules}---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: hd-reader-{user}, namespace: {ns}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: hd-reader}}\nsubjects:\n- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: {user}}}\n"
        )
    };
    // The platform namespace: Houston's Deployment, no ConfigMaps.
    bed.apply(&role(
        &plat.ns,
        "- apiGroups: [apps]\n  resources: [deployments]\n  verbs: [get, list]\n",
    ));
    bed.apply(&role(&ns, "- apiGroups: [\"\"]\n  resources: [configmaps, pods]\n  verbs: [get, list]\n- apiGroups: [apps]\n  resources: [deployments, statefulsets]\n  verbs: [get, list]\n- apiGroups: [batch]\n  resources: [cronjobs]\n  verbs: [get, list]\n"));
    let context = format!("testbed-{user}");
    let o = bed.run(&[
        "show",
        "hd-rel",
        "-n",
        &ns,
        "--platform-namespace",
        &plat.ns,
        "--context",
        &context,
    ]);
    o.assert_code(0);
    let notes: Vec<&str> = o
        .stderr
        .lines()
        .filter(|l| l.starts_with("note:"))
        .collect();
    assert_eq!(notes.len(), 1, "{}", o.stderr);
    assert!(
        notes[0].contains("5 Runtime container(s) run repository@sha256 without a tag")
            && notes[0].contains(&format!("may not read ConfigMap {}/{CM}", plat.ns)),
        "{}",
        o.stderr
    );
    assert!(
        o.stdout.contains("pinned") && !o.stdout.contains("(catalog)"),
        "today's table: {}",
        o.stdout
    );
    let o = bed.run(&[
        "show",
        "hd-rel",
        "-n",
        &ns,
        "--platform-namespace",
        &plat.ns,
        "--context",
        &context,
        "-o",
        "json",
    ]);
    o.assert_code(0);
    for i in o.json()["items"].as_array().unwrap() {
        assert_eq!(
            (&i["status"], &i["version"]),
            (&json!("pinned"), &Value::Null)
        );
    }

    let o = bed.run(&[
        "status",
        "--platform-namespace",
        &plat.ns,
        "-n",
        &ns,
        "--context",
        &context,
        "-o",
        "json",
    ]);
    // Exit 1, not an error: reads were refused, so the report is partial (README's exit codes).
    o.assert_code(1);
    assert_eq!(
        o.stderr.lines().filter(|l| l.starts_with("note:")).count(),
        1,
        "{}",
        o.stderr
    );
    let v = o.json();
    assert_eq!(v["deployments"]["byState"]["pinned"], 1);
    assert_eq!(v["houstonRendering"]["notJudged"], 1);
    assert_eq!(v["houstonRendering"]["rendersDigests"], Value::Null);
}
