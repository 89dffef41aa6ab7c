//! `enable --in-cluster`, `enable --values` with the chart version read from the cluster, and
//! `status`, against the local test bed. Each test builds its own platform in its own namespace
//! (Houston Deployment labelled component=houston, `<release>-houston-config`, and the Helm
//! release Secret whose payload is built here: base64 of gzip of the release JSON) and passes
//! --platform-namespace, so the shared `astronomer` fixture is never touched. Houston Deployments
//! are deleted at the end so platform discovery elsewhere keeps finding one platform.

use crate::support;

use std::io::Write;

use crate::support::{Bed, Out};
use base64::Engine as _;
use serde_json::{json, Value};

/// The bed's token registry, as `scripts/testbed env` exports it (a second bed uses other ports).
pub(crate) struct Reg;
impl std::fmt::Display for Reg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reg = std::env::var("ASTRO_SHA_REG_TOKEN").unwrap_or_else(|_| "127.0.0.1:5002".into());
        f.write_str(&reg)
    }
}
pub(crate) const REG: Reg = Reg;

/// Helm's storage payload: base64(gzip(release JSON)).
fn helm_payload(release: &str, revision: u64, chart_version: &str, values: &Value) -> String {
    let rel = json!({
        "name": release,
        "version": revision,
        "namespace": "ignored",
        "info": {"status": "deployed", "description": "Upgrade complete"},
        "chart": {"metadata": {"name": "astronomer", "version": chart_version, "appVersion": chart_version}},
        "config": values,
        "manifest": "---\n# rendered manifests elided\n",
    });
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(rel.to_string().as_bytes()).unwrap();
    base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap())
}

pub(crate) fn helm_secret(
    ns: &str,
    release: &str,
    revision: u64,
    status: &str,
    chart: &str,
    values: &Value,
) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
        "metadata": {"name": format!("sh.helm.release.v1.{release}.v{revision}"), "namespace": ns,
            "labels": {"owner": "helm", "name": release, "status": status, "version": revision.to_string()}},
        // stringData: the API adds its own base64 layer on top of Helm's payload.
        "stringData": {"release": helm_payload(release, revision, chart, values)}
    })
}

/// Local-production text the way Helm's toYaml renders it, plus quirks a text edit must keep.
const LOCAL_PRODUCTION: &str = "publicSignups: false\nemailConfirmation: false\nemail:\n  reply: \"noreply@example.com\"\ndeployments:\n  hardDeleteDeployment: true\n  manualReleaseNames: true\n  configureDagDeployment: true\nhelm:\n  tlsSecretName: astronomer-tls\n";
const PRODUCTION: &str =
    "nodeEnv: production\nwebserver:\n  port: 8871\ndeployments:\n  chart:\n    version: 1.10.1\n";

pub(crate) struct Plat<'a> {
    bed: &'a Bed,
    pub(crate) ns: String,
    release: String,
    /// Deletes the namespace after `Plat`'s own clean-up has run.
    _guard: support::TestNamespace,
}

impl Drop for Plat<'_> {
    fn drop(&mut self) {
        // Leave no second Houston behind for other tests' platform discovery, pass or fail.
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

/// Namespaces of Airflow Deployments made by a test: their workloads are removed after a
/// passing test so `show -A` elsewhere does not count them (kept after a failure, to look at).
pub(crate) struct AirflowNamespaces<'a> {
    bed: &'a Bed,
    namespaces: Vec<String>,
    guards: Vec<support::TestNamespace>,
}

impl<'a> AirflowNamespaces<'a> {
    pub(crate) fn new(bed: &'a Bed) -> Self {
        AirflowNamespaces {
            bed,
            namespaces: vec![],
            guards: vec![],
        }
    }

    pub(crate) fn add(&mut self) -> String {
        let guard = self.bed.namespace("en-air");
        let ns = guard.name.clone();
        self.namespaces.push(ns.clone());
        self.guards.push(guard);
        ns
    }
}

impl Drop for AirflowNamespaces<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        for ns in &self.namespaces {
            let _ = self.bed.kubectl(&[
                "-n",
                ns,
                "delete",
                "deployments,statefulsets,configmaps,pods",
                "-l",
                "tier=airflow",
                "--wait=false",
            ]);
        }
    }
}

struct PlatSpec<'a> {
    chart: &'a str,
    values: Value,
    local_production: &'a str,
    /// A releases ConfigMap name Houston's pod spec mounts.
    mount: Option<&'a str>,
    /// Also write an older, superseded revision (with another chart version).
    superseded: Option<&'a str>,
}

fn platform<'a>(bed: &'a Bed, prefix: &str, spec: PlatSpec) -> Plat<'a> {
    let guard = bed.namespace(prefix);
    let ns = guard.name.clone();
    let release = format!("{prefix}plat");
    let mut volumes = vec![
        json!({"name": "houston-config-volume", "configMap": {"name": format!("{release}-houston-config")}}),
    ];
    let mut mounts = vec![
        json!({"name": "houston-config-volume", "mountPath": "/houston/config/production.yaml", "subPath": "production.yaml"}),
        json!({"name": "houston-config-volume", "mountPath": "/houston/config/local-production.yaml", "subPath": "local-production.yaml"}),
    ];
    if let Some(cm) = spec.mount {
        volumes.push(json!({"name": "runtime-releases", "configMap": {"name": cm}}));
        mounts.push(json!({"name": "runtime-releases", "mountPath": "/houston/astro_runtime_releases.json", "subPath": "astro_runtime_releases.json"}));
    }
    let labels = json!({"tier": "astronomer", "component": "houston", "release": release});
    let mut items = vec![
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": format!("{release}-houston"), "namespace": ns,
                "labels": {"tier": "astronomer", "component": "houston", "release": release, "chart": format!("astronomer-{}", spec.chart)},
                "annotations": {"meta.helm.sh/release-name": release}},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels, "annotations": {"checksum/houston-config": "abc"}},
                    "spec": {"containers": [{"name": "houston", "image": "quay.io/astronomer/ap-houston-api:0.37.4", "volumeMounts": mounts}],
                        "volumes": volumes}}}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("{release}-houston-config"), "namespace": ns, "labels": {"component": "houston", "release": release}},
            "data": {"production.yaml": PRODUCTION, "local-production.yaml": spec.local_production}}),
        helm_secret(&ns, &release, 2, "deployed", spec.chart, &spec.values),
    ];
    if let Some(old) = spec.superseded {
        items.push(helm_secret(&ns, &release, 1, "superseded", old, &json!({})));
    }
    bed.apply(&json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string());
    Plat {
        bed,
        ns,
        release,
        _guard: guard,
    }
}

fn plain(chart: &'static str) -> PlatSpec<'static> {
    PlatSpec {
        chart,
        values: json!({"global": {"baseDomain": "astro.example.com"}, "astronomer": {"houston": {"config": {"deployments": {"hardDeleteDeployment": true}}}}}),
        local_production: LOCAL_PRODUCTION,
        mount: None,
        superseded: None,
    }
}

fn cm_data(bed: &Bed, ns: &str, name: &str) -> Value {
    bed.get_json(&["-n", ns, "configmap", name])
}

fn restarted_at(bed: &Bed, ns: &str, deploy: &str) -> Option<String> {
    bed.get_json(&["-n", ns, "deployment", deploy])["spec"]["template"]["metadata"]["annotations"]
        ["kubectl.kubernetes.io/restartedAt"]
        .as_str()
        .map(str::to_string)
}

fn copy_values(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("values.yaml");
    std::fs::copy(
        support::repo_root()
            .join("tests/fixtures/values")
            .join(name),
        &p,
    )
    .unwrap();
    (dir, p)
}

/// The old text's lines, in order, plus only `added` (checked as a multiset of lines).
fn assert_only_added(old: &str, new: &str, added: &[&str]) {
    let mut rest: Vec<&str> = new.lines().collect();
    for a in added {
        let i = rest
            .iter()
            .position(|l| l == a)
            .unwrap_or_else(|| panic!("line {a:?} not added:\n{new}"));
        rest.remove(i);
    }
    assert_eq!(
        rest,
        old.lines().collect::<Vec<_>>(),
        "every other line unchanged, in order:\n{new}"
    );
    assert_eq!(new.ends_with('\n'), old.ends_with('\n'));
}

/// 0.37.x and 1.x platforms get the flat key, 2.x the nested one: read from the newest deployed
/// Helm release Secret (decoded from base64 of gzip), for a values file and in the cluster.
#[test]
fn helm_release_decides_the_schema() {
    let Some(bed) = Bed::get() else { return };
    for (chart, superseded, flat) in [
        ("0.37.4", None, true),
        ("1.1.0", Some("0.37.4"), true),
        ("2.1.0", Some("1.1.0"), false),
    ] {
        let mut spec = plain(chart);
        spec.superseded = superseded;
        let plat = platform(&bed, "en", spec);
        let (_dir, values) = copy_values("no-flag.yaml");
        let o = bed.run(&[
            "enable",
            "--values",
            values.to_str().unwrap(),
            "--platform-namespace",
            &plat.ns,
            "--yes",
        ]);
        o.assert_code(0);
        let text = std::fs::read_to_string(&values).unwrap();
        let secret = format!("sh.helm.release.v1.{}.v2", plat.release);
        assert!(
            o.stderr.contains(&format!("platform chart {chart} reads")),
            "{chart}: {}",
            o.stderr
        );
        assert!(
            o.stderr.contains(&secret),
            "{chart}: names the Secret read: {}",
            o.stderr
        );
        if flat {
            assert!(
                text.contains("        customImageShaEnabled: true\n"),
                "{chart}:\n{text}"
            );
            assert!(!text.contains("runtimeManagement"), "{chart}: never both");
        } else {
            assert!(text.contains("        runtimeManagement:\n          customImageSha:\n            enabled: true\n"), "{chart}:\n{text}");
            assert!(
                !text.contains("customImageShaEnabled"),
                "{chart}: never both"
            );
        }

        let o = bed.run(&[
            "enable",
            "--in-cluster",
            "--yes",
            "--platform-namespace",
            &plat.ns,
        ]);
        o.assert_code(0);
        let lp = cm_data(&bed, &plat.ns, &format!("{}-houston-config", plat.release))["data"]
            ["local-production.yaml"]
            .as_str()
            .unwrap()
            .to_string();
        if flat {
            assert_only_added(LOCAL_PRODUCTION, &lp, &["  customImageShaEnabled: true"]);
        } else {
            assert_only_added(
                LOCAL_PRODUCTION,
                &lp,
                &[
                    "  runtimeManagement:",
                    "    customImageSha:",
                    "      enabled: true",
                ],
            );
        }
    }
}

/// `--in-cluster` changes only the feature lines of local-production.yaml, nothing else in the
/// ConfigMap, bumps Houston's restartedAt (keeping its other annotations), says what the next
/// helm upgrade does, and is idempotent; --dry-run and a refused confirmation change nothing.
#[test]
fn in_cluster_patches_only_the_feature_lines_and_restarts_houston() {
    let Some(bed) = Bed::get() else { return };
    let plat = platform(&bed, "en", plain("0.37.4"));
    let cm_name = format!("{}-houston-config", plat.release);
    let houston = format!("{}-houston", plat.release);
    let before = cm_data(&bed, &plat.ns, &cm_name);

    // Dry run: the diff on stdout, nothing changed.
    let o = bed.run(&[
        "enable",
        "--in-cluster",
        "--dry-run",
        "--platform-namespace",
        &plat.ns,
    ]);
    o.assert_code(0);
    assert!(
        o.stdout.contains("+  customImageShaEnabled: true"),
        "{}",
        o.stdout
    );
    assert_eq!(
        cm_data(&bed, &plat.ns, &cm_name)["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert_eq!(restarted_at(&bed, &plat.ns, &houston), None);

    // No terminal and no --yes: refused, nothing changed.
    let o = bed.run(&["enable", "--in-cluster", "--platform-namespace", &plat.ns]);
    o.assert_code(2);
    assert!(o.stderr.contains("pass --yes"), "{}", o.stderr);
    assert_eq!(
        cm_data(&bed, &plat.ns, &cm_name)["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );

    let o = bed.run(&[
        "enable",
        "--in-cluster",
        "--yes",
        "--platform-namespace",
        &plat.ns,
        "--default-runtime-repository",
        "registry.corp:5000/astronomer/astro-runtime",
    ]);
    o.assert_code(0);
    assert!(
        o.stderr.contains("OVERWRITES this change"),
        "states what helm upgrade does: {}",
        o.stderr
    );
    assert!(
        o.stderr
            .contains(&format!("restarted deployment/{houston}")),
        "{}",
        o.stderr
    );
    let after = cm_data(&bed, &plat.ns, &cm_name);
    let lp = after["data"]["local-production.yaml"].as_str().unwrap();
    assert_only_added(
        LOCAL_PRODUCTION,
        lp,
        &[
            "  customImageShaEnabled: true",
            "  helm:",
            "    airflow:",
            "      defaultRuntimeRepository: registry.corp:5000/astronomer/astro-runtime",
        ],
    );
    assert_eq!(
        after["data"]["production.yaml"],
        before["data"]["production.yaml"]
    );
    assert_eq!(after["metadata"]["labels"], before["metadata"]["labels"]);
    let first = restarted_at(&bed, &plat.ns, &houston).expect("restartedAt set");
    let ann = &bed.get_json(&["-n", &plat.ns, "deployment", &houston])["spec"]["template"]
        ["metadata"]["annotations"];
    assert_eq!(
        ann["checksum/houston-config"], "abc",
        "other annotations kept"
    );

    // Second run: already enabled; no write, no restart.
    let o = bed.run(&[
        "enable",
        "--in-cluster",
        "--yes",
        "--platform-namespace",
        &plat.ns,
        "--default-runtime-repository",
        "registry.corp:5000/astronomer/astro-runtime",
    ]);
    o.assert_code(0);
    assert!(o.stderr.contains("already enabled"), "{}", o.stderr);
    assert_eq!(
        cm_data(&bed, &plat.ns, &cm_name)["metadata"]["resourceVersion"],
        after["metadata"]["resourceVersion"]
    );
    assert_eq!(
        restarted_at(&bed, &plat.ns, &houston).as_deref(),
        Some(first.as_str())
    );
}

/// When the Helm values already enable the feature, the warning says the upgrade keeps it.
/// `--in-cluster` patches with the resourceVersion it read (docs/enable-status.md): another
/// writer acting while the question is on the terminal makes it stop if it changed
/// local-production.yaml (exit 2, its text kept, nothing restarted), and re-plan if it changed
/// another key of the ConfigMap (the other key kept).
#[test]
fn in_cluster_stops_when_another_writer_changed_the_configmap() {
    let Some(bed) = Bed::get() else { return };
    let plat = platform(&bed, "enrace", plain("0.37.4"));
    let cm_name = format!("{}-houston-config", plat.release);
    let houston = format!("{}-houston", plat.release);
    let args = ["enable", "--in-cluster", "--platform-namespace", &plat.ns];
    let theirs = format!("{LOCAL_PRODUCTION}# edited by someone else\n");
    let write = |key: &str, text: &str| {
        let patch = json!({"data": {key: text}}).to_string();
        let o = bed.kubectl(&[
            "-n",
            &plat.ns,
            "patch",
            "configmap",
            &cm_name,
            "--type",
            "merge",
            "-p",
            &patch,
        ]);
        assert!(o.ok(), "{}", o.stderr);
    };
    // The same key: stop, their text stays.
    let (code, shown) = support::tty::on_a_terminal(&bed, &args, |_| {
        write("local-production.yaml", &theirs);
        "y\n".into()
    });
    assert_eq!(code, 2, "{shown}");
    assert!(
        shown.contains(&format!(
            "{}/{cm_name}:local-production.yaml was changed by someone else while this ran; nothing was written",
            plat.ns
        )),
        "{shown}"
    );
    let cm = cm_data(&bed, &plat.ns, &cm_name);
    assert_eq!(cm["data"]["local-production.yaml"], theirs.as_str());
    assert_eq!(restarted_at(&bed, &plat.ns, &houston), None);
    // Another key: re-read, re-planned, written; their key stays.
    let (code, shown) = support::tty::on_a_terminal(&bed, &args, |_| {
        write("their.yaml", "mine: true\n");
        "y\n".into()
    });
    assert_eq!(code, 0, "{shown}");
    let cm = cm_data(&bed, &plat.ns, &cm_name);
    assert_eq!(cm["data"]["their.yaml"], "mine: true\n");
    let lp = cm["data"]["local-production.yaml"].as_str().unwrap();
    assert!(
        lp.contains("# edited by someone else") && lp.contains("customImageShaEnabled: true"),
        "{lp}"
    );
    assert!(restarted_at(&bed, &plat.ns, &houston).is_some());
}

#[test]
fn in_cluster_knows_when_the_values_already_say_the_same() {
    let Some(bed) = Bed::get() else { return };
    let mut spec = plain("1.1.0");
    spec.values = json!({"astronomer": {"houston": {"config": {"deployments": {"customImageShaEnabled": true}}}}});
    let plat = platform(&bed, "en", spec);
    let o = bed.run(&[
        "enable",
        "--in-cluster",
        "--yes",
        "--platform-namespace",
        &plat.ns,
        "-o",
        "json",
    ]);
    o.assert_code(0);
    assert!(
        o.stderr
            .contains("already enable the feature, so the next `helm upgrade`"),
        "{}",
        o.stderr
    );
    let v = o.json();
    assert_eq!(v["written"], true);
    assert_eq!(
        v["restarted"][0],
        format!("deployment/{}-houston", plat.release)
    );
}

/// `status --platform-namespace X` where X has no Houston: the fix says X has none and how to
/// find the namespace that has, instead of asking for the flag that was given; the releases
/// ConfigMap looked for in X is said to be missing there (issue 23).
#[test]
fn status_names_the_platform_namespace_given_without_houston() {
    let Some(bed) = Bed::get() else { return };
    let empty = bed.namespace("en");
    let air = bed.namespace("en-air");
    let o = bed.run(&[
        "status",
        "--platform-namespace",
        &empty,
        "-n",
        &air,
        "-o",
        "json",
    ]);
    let v = o.json();
    let problems = v["problems"].as_array().unwrap();
    let houston = problems
        .iter()
        .find(|p| {
            p["problem"]
                .as_str()
                .unwrap()
                .contains("no Houston Deployment")
        })
        .unwrap_or_else(|| panic!("{problems:?}"));
    let fix = houston["fix"].as_str().unwrap();
    assert!(!fix.contains("as --platform-namespace"), "{fix}");
    assert!(
        fix.contains(&format!(
            "namespace {empty} (--platform-namespace) has no Houston"
        )),
        "{fix}"
    );
    assert!(
        fix.contains("kubectl get deployments -A -l component=houston"),
        "{fix}"
    );
    assert_eq!(
        v["releasesConfigMap"]["namespace"],
        json!(empty.to_string())
    );
}

/// A platform namespace without Houston, and a Helm Secret that does not decode.
#[test]
fn bad_platform_input_is_a_clear_error() {
    let Some(bed) = Bed::get() else { return };
    let empty = bed.namespace("en");
    let o = bed.run(&[
        "enable",
        "--in-cluster",
        "--yes",
        "--platform-namespace",
        &empty,
    ]);
    o.assert_code(2);
    assert!(
        o.stderr.contains(&format!(
            "no Houston Deployment (label component=houston) in namespace \"{empty}\""
        )),
        "{}",
        o.stderr
    );

    let plat = platform(&bed, "en", plain("0.37.4"));
    bed.apply(
        &json!({"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
            "metadata": {"name": format!("sh.helm.release.v1.{}.v3", plat.release), "namespace": plat.ns,
                "labels": {"owner": "helm", "name": plat.release, "status": "deployed", "version": "3"}},
            "stringData": {"release": "not-base64-gzip!"}})
        .to_string(),
    );
    let (_dir, values) = copy_values("no-flag.yaml");
    let o = bed.run(&[
        "enable",
        "--values",
        values.to_str().unwrap(),
        "--platform-namespace",
        &plat.ns,
        "--dry-run",
    ]);
    o.assert_code(0);
    assert!(
        o.stderr
            .contains("cannot decode the Helm release in Secret"),
        "{}",
        o.stderr
    );
    let o = bed.run(&[
        "status",
        "--platform-namespace",
        &plat.ns,
        "-n",
        &plat.ns,
        "-o",
        "json",
    ]);
    o.assert_code(0);
    let problems = o.json()["problems"].to_string();
    assert!(
        problems.contains("cannot decode the Helm release"),
        "{problems}"
    );
}

fn catalog_json(bed: &Bed, with_digest: bool) -> String {
    let d = |repo: &str, tag: &str| bed.seeded_digest(repo, tag);
    let mut e1 = json!({"metadata": {"airflowVersion": "2.10.5", "channel": "stable"}});
    if with_digest {
        e1["sha256"] = json!(d("astronomer/astro-runtime", "12.1.0"));
    }
    json!({"version": "1.0",
        "runtimeVersions": {"12.1.0": e1, "12.2.0": {"metadata": {"channel": "stable"}, "sha256": d("astronomer/astro-runtime", "12.2.0")}},
        "runtimeVersionsV3": {"3.1-1": {"metadata": {"channel": "stable"}, "sha256": d("runtime", "3.1-1")}}})
    .to_string()
}

fn releases_cm(ns: &str, json: String) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "astro-runtime-base-images", "namespace": ns,
            "annotations": {"astro-sha.astronomer.io/imported-at": "2026-11-26T10:00:00Z"}},
        "data": {"astro_runtime_releases.json": json}})
}

/// A platform in order: feature on in both places, releases ConfigMap complete and mounted.
pub(crate) fn enabled_platform<'a>(bed: &'a Bed) -> Plat<'a> {
    let plat = platform(
        bed,
        "en",
        PlatSpec {
            chart: "0.37.4",
            values: json!({"astronomer": {"houston": {"runtimeReleasesConfigMapName": "astro-runtime-base-images",
                "config": {"deployments": {"customImageShaEnabled": true}}}}}),
            local_production: "deployments:\n  customImageShaEnabled: true\n",
            mount: Some("astro-runtime-base-images"),
            superseded: None,
        },
    );
    bed.apply(&releases_cm(&plat.ns, catalog_json(bed, true)).to_string());
    plat
}

/// A Pod of `workload` in `ns` whose kubelet reports `digest` for `containers` (status written
/// through pods/status, as no kubelet runs on the bed).
fn running_pod(
    bed: &Bed,
    ns: &str,
    release: &str,
    component: &str,
    containers: &[&str],
    digest: &str,
) {
    let name = format!("{release}-{component}-x1");
    let cs: Vec<Value> = containers
        .iter()
        .map(|c| json!({"name": c, "image": "img"}))
        .collect();
    bed.apply(
        &json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"tier": "airflow", "component": component, "release": release}},
            "spec": {"automountServiceAccountToken": false, "containers": cs}})
        .to_string(),
    );
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| json!({"name": c, "image": "img", "imageID": format!("{REG}/astronomer/astro-runtime@{digest}"), "ready": true, "restartCount": 0}))
        .collect();
    let o = bed.kubectl(&[
        "-n",
        ns,
        "patch",
        "pod",
        &name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &json!({"status": {"containerStatuses": statuses}}).to_string(),
    ]);
    assert!(o.ok(), "pods/status: {}", o.stderr);
}

/// status on a fixture platform: one Airflow Deployment in each state, counted by worst state,
/// each with its fix; --check exits 1; then with only pinned releases it exits 0.
#[test]
fn status_reports_each_state_and_check_exit_codes() {
    let Some(bed) = Bed::get() else { return };
    let plat = enabled_platform(&bed);
    let mut airflow = AirflowNamespaces::new(&bed);
    let air = airflow.add();
    let cur = bed.seeded_digest("astronomer/astro-runtime", "12.2.0");
    let other = bed.seeded_digest("astronomer/astro-runtime", "12.1.0");
    let old_v3 = bed.seed["drift"]["old_digest"]
        .as_str()
        .expect("seed drift")
        .to_string();
    let drift_tag = bed.seed["drift"]["tag"].as_str().unwrap().to_string();
    let drift_repo = bed.seed["drift"]["repository"]
        .as_str()
        .unwrap()
        .to_string();
    let releases = [
        (
            "pinned-rel",
            format!("{REG}/astronomer/astro-runtime:12.2.0@{cur}"),
        ),
        (
            "tagonly-rel",
            format!("{REG}/astronomer/astro-runtime:12.1.0"),
        ),
        (
            "drifted-rel",
            format!("{REG}/{drift_repo}:{drift_tag}@{old_v3}"),
        ),
        (
            "differs-rel",
            format!("{REG}/astronomer/astro-runtime:12.2.0@{cur}"),
        ),
        (
            "unres-rel",
            format!("{REG}/astronomer/astro-runtime:99.99.99-missing"),
        ),
    ];
    for (rel, image) in &releases {
        bed.apply(&support::airflow_release_yaml(
            &air,
            rel,
            image,
            "Deployment",
        ));
    }
    running_pod(
        &bed,
        &air,
        "pinned-rel",
        "scheduler",
        &["scheduler", "scheduler-log-groomer"],
        &cur,
    );
    running_pod(
        &bed,
        &air,
        "differs-rel",
        "scheduler",
        &["scheduler", "scheduler-log-groomer"],
        &other,
    );

    let o = bed.run(&[
        "status",
        "--platform-namespace",
        &plat.ns,
        "-n",
        &air,
        "-o",
        "json",
    ]);
    o.assert_code(0);
    let v = o.json();
    assert_eq!(v["platform"]["namespace"], plat.ns.as_str());
    assert_eq!(v["platform"]["chartVersion"], "0.37.4");
    assert_eq!(v["feature"]["enabled"], true);
    assert_eq!(v["feature"]["disagree"], false);
    assert_eq!(v["feature"]["helmValues"]["flat"], true);
    assert_eq!(v["feature"]["localProduction"]["flat"], true);
    let c = &v["releasesConfigMap"];
    assert_eq!(
        (
            c["present"].clone(),
            c["dataKeyOk"].clone(),
            c["mounted"].clone()
        ),
        (json!(true), json!(true), json!(true))
    );
    assert_eq!(
        (c["versions"].clone(), c["withDigest"].clone()),
        (json!(3), json!(3))
    );
    assert_eq!(c["importedAt"], "2026-11-26T10:00:00Z");
    assert_eq!(c["mountPath"], "/houston/astro_runtime_releases.json");
    let by = &v["deployments"]["byState"];
    assert_eq!(
        [
            &by["pinned"],
            &by["tag-only"],
            &by["drifted"],
            &by["running-differs"],
            &by["unresolved"]
        ],
        [&json!(1), &json!(1), &json!(1), &json!(1), &json!(1)],
        "{}",
        v["deployments"]
    );
    let state = |rel: &str| {
        v["deployments"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["release"] == rel)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state("pinned-rel"), "pinned");
    assert_eq!(state("tagonly-rel"), "tag-only");
    assert_eq!(state("drifted-rel"), "drifted");
    assert_eq!(state("differs-rel"), "running-differs");
    assert_eq!(state("unres-rel"), "unresolved");
    let fixes: Vec<String> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["fix"].as_str().unwrap().to_string())
        .collect();
    assert!(
        fixes.contains(&"kubectl astro-sha pin tagonly-rel".to_string()),
        "{fixes:?}"
    );
    assert!(
        fixes
            .iter()
            .any(|f| f.starts_with("kubectl astro-sha pin drifted-rel")),
        "{fixes:?}"
    );
    assert!(
        fixes.contains(&format!(
            "kubectl -n {air} rollout restart deployment/differs-rel-scheduler"
        )),
        "{fixes:?}"
    );
    assert_eq!(v["couldNotRead"], json!([]));
    assert_eq!(v["ok"], false);

    // The table: one screen with every section and a fix per problem.
    let o = bed.run(&["status", "--platform-namespace", &plat.ns, "-n", &air]);
    o.assert_code(0);
    for needle in [
        "Feature flag:        enabled",
        "mounted in Houston: yes",
        "versions: 3   with a digest: 3",
        "tagonly-rel",
        "fix: kubectl astro-sha pin tagonly-rel",
    ] {
        assert!(o.stdout.contains(needle), "{needle:?} in:\n{}", o.stdout);
    }

    bed.run(&[
        "status",
        "--check",
        "--platform-namespace",
        &plat.ns,
        "-n",
        &air,
    ])
    .assert_code(1);

    // Only pinned releases, everything else in order: --check passes.
    let good = airflow.add();
    bed.apply(&support::airflow_release_yaml(
        &good,
        "fine-rel",
        &format!("{REG}/astronomer/astro-runtime:12.2.0@{cur}"),
        "Deployment",
    ));
    // Pinned, but no pod reports what it runs: unknown, which --check does not pass (issue 23).
    let args = [
        "status",
        "--check",
        "--platform-namespace",
        &plat.ns,
        "-n",
        &good,
    ];
    let o = bed.run(&args);
    o.assert_code(1);
    assert!(
        o.stdout
            .contains("reports what it runs (scaled to zero, or not started)"),
        "{}",
        o.stdout
    );
    // Its pods run the pin: in order.
    running_pod(
        &bed,
        &good,
        "fine-rel",
        "scheduler",
        &["scheduler", "scheduler-log-groomer"],
        &cur,
    );
    running_pod(&bed, &good, "fine-rel", "webserver", &["webserver"], &cur);
    // ... init container included (its imageID is in initContainerStatuses)
    let init = json!({"status": {"initContainerStatuses": [{"name": "wait-for-airflow-migrations",
        "image": "img", "imageID": format!("{REG}/astronomer/astro-runtime@{cur}"), "ready": true, "restartCount": 0}]}});
    let o = bed.kubectl(&[
        "-n",
        &good,
        "patch",
        "pod",
        "fine-rel-scheduler-x1",
        "--subresource=status",
        "--type=merge",
        "-p",
        &init.to_string(),
    ]);
    assert!(o.ok(), "pods/status: {}", o.stderr);
    let o = bed.run(&[
        "status",
        "--check",
        "--platform-namespace",
        &plat.ns,
        "-n",
        &good,
    ]);
    o.assert_code(0);
    assert!(o.stdout.contains("All in order"), "{}", o.stdout);
}

/// Each platform-side problem is reported with its fix, and --check fails on it.
#[test]
fn status_finds_platform_problems() {
    let Some(bed) = Bed::get() else { return };
    // Feature on in Houston's config (enable --in-cluster) but not in the Helm values; releases
    // ConfigMap with the documentation's typo key; Houston does not mount it.
    let plat = platform(&bed, "en", plain("2.1.0"));
    bed.run(&[
        "enable",
        "--in-cluster",
        "--yes",
        "--platform-namespace",
        &plat.ns,
    ])
    .assert_code(0);
    bed.apply(
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "astro-runtime-base-images", "namespace": plat.ns},
            "data": {"astro_runtime_release.json": catalog_json(&bed, true)}})
        .to_string(),
    );
    let empty = bed.namespace("en-air");
    let o = bed.run(&[
        "status",
        "--platform-namespace",
        &plat.ns,
        "-n",
        &empty,
        "-o",
        "json",
    ]);
    o.assert_code(0);
    let v = o.json();
    assert_eq!(v["feature"]["disagree"], true);
    assert_eq!(
        v["feature"]["localProduction"]["nested"], true,
        "2.x: nested written by enable"
    );
    assert_eq!(v["releasesConfigMap"]["dataKeyOk"], false);
    assert_eq!(v["releasesConfigMap"]["mounted"], false);
    let problems = v["problems"].to_string();
    assert!(
        problems.contains("the next helm upgrade turns it off"),
        "{problems}"
    );
    assert!(
        problems.contains("astro_runtime_release.json, the documentation's typo"),
        "{problems}"
    );
    assert!(
        problems.contains("does not mount ConfigMap astro-runtime-base-images"),
        "{problems}"
    );
    assert!(
        problems.contains("kubectl astro-sha enable --values values.yaml"),
        "{problems}"
    );
    assert!(
        problems.contains("kubectl astro-sha import --configmap astro-runtime-base-images"),
        "{problems}"
    );
    bed.run(&[
        "status",
        "--check",
        "--platform-namespace",
        &plat.ns,
        "-n",
        &empty,
    ])
    .assert_code(1);

    // Digests missing in the catalog.
    let plat = enabled_platform(&bed);
    bed.apply(&releases_cm(&plat.ns, catalog_json(&bed, false)).to_string());
    let o = bed.run(&[
        "status",
        "--platform-namespace",
        &plat.ns,
        "-n",
        &empty,
        "-o",
        "json",
    ]);
    let v = o.json();
    assert_eq!(v["releasesConfigMap"]["withDigest"], 2);
    assert!(
        v["problems"].to_string().contains("--only-missing"),
        "{}",
        v["problems"]
    );
}

fn assert_partial(o: &Out, must: &[&str]) {
    for m in must {
        assert!(
            o.stdout.contains(m),
            "{m:?} in:\n{}\n{}",
            o.stdout,
            o.stderr
        );
    }
}

/// The no-rights user: nothing readable, yet a report that says what it could not read; exit 1
/// with or without --check (a partial report is not a complete answer, issue 23).
#[test]
fn no_rights_user_gets_a_partial_report() {
    let Some(bed) = Bed::get() else { return };
    let plat = enabled_platform(&bed);
    let air = bed.namespace("en-air");
    let args = [
        "status",
        "--context",
        "testbed-norights",
        "--platform-namespace",
        &plat.ns,
        "-n",
        &air,
    ];
    let o = bed.run(&args);
    o.assert_code(1);
    assert!(o.stderr.contains("status is partial"), "{}", o.stderr);
    assert_partial(
        &o,
        &[
            "Could not read (the report above is partial)",
            &format!(
                "could not read: deployments.apps in namespace {} (forbidden)",
                plat.ns
            ),
            &format!(
                "could not read: configmaps in namespace {} (forbidden)",
                plat.ns
            ),
        ],
    );
    assert!(
        o.stdout.contains("Airflow Deployments: unknown"),
        "{}",
        o.stdout
    );
    let mut check = args.to_vec();
    check.push("--check");
    bed.run(&check).assert_code(1);
    let mut json_args = args.to_vec();
    json_args.extend(["-o", "json"]);
    let v = bed.run(&json_args).json();
    assert_eq!(v["ok"], false);
    assert!(
        v["couldNotRead"].as_array().unwrap().len() >= 2,
        "{}",
        v["couldNotRead"]
    );
}

/// A user allowed everything status reads except Secrets gets the whole report but the Helm
/// release, and says so.
#[test]
fn user_without_secrets_gets_everything_else() {
    let Some(bed) = Bed::get() else { return };
    let plat = enabled_platform(&bed);
    let mut airflow = AirflowNamespaces::new(&bed);
    let air = airflow.add();
    let cur = bed.seeded_digest("astronomer/astro-runtime", "12.2.0");
    bed.apply(&support::airflow_release_yaml(
        &air,
        "pinned-rel",
        &format!("{REG}/astronomer/astro-runtime:12.2.0@{cur}"),
        "Deployment",
    ));
    let user = "limited5";
    for ns in [&plat.ns, &air] {
        bed.apply(&format!(
            r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: status-reader, namespace: {ns}}}
rules:
- apiGroups: [""]
  resources: [configmaps, pods]
  verbs: [get, list]
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [get, list]
- apiGroups: [batch]
  resources: [cronjobs]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: status-reader-{user}, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: status-reader}}
subjects:
- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: {user}}}
"#
        ));
    }
    let o = bed.run(&[
        "status",
        "--context",
        &format!("testbed-{user}"),
        "--platform-namespace",
        &plat.ns,
        "-n",
        &air,
        "-o",
        "json",
    ]);
    // the report is partial without the Helm release: exit 1 (issue 23)
    o.assert_code(1);
    let v = o.json();
    assert_eq!(
        v["couldNotRead"],
        json!([format!(
            "secrets in namespace {} (forbidden), so the Helm release values and chart version",
            plat.ns
        )])
    );
    assert_eq!(
        v["platform"]["chartVersion"], "0.37.4",
        "from Houston's chart label"
    );
    assert_eq!(v["feature"]["enabled"], true, "from local-production.yaml");
    assert_eq!(v["feature"]["helmValues"], Value::Null);
    assert_eq!(v["releasesConfigMap"]["withDigest"], 3);
    assert_eq!(v["releasesConfigMap"]["mounted"], true);
    assert_eq!(v["deployments"]["byState"]["pinned"], 1);
    // the one problem: no pod runs, so whether the pin runs is unknown (issue 23)
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0]["problem"]
            .as_str()
            .is_some_and(|p| p.ends_with("whether it runs its pin is unknown")),
        "{problems:?}"
    );
    bed.run(&[
        "status",
        "--check",
        "--context",
        &format!("testbed-{user}"),
        "--platform-namespace",
        &plat.ns,
        "-n",
        &air,
    ])
    .assert_code(1);
}

/// In the live config too, an explicit `false` with a comment was off on purpose (issue 23): the
/// warning names the key, the ConfigMap and the comment before the question, and the comment
/// stays on the line; on 2.x the nested key likewise, and a moved flat key takes it along.
#[test]
fn in_cluster_names_a_flag_turned_off_on_purpose_and_keeps_its_comment() {
    let Some(bed) = Bed::get() else { return };
    for (chart, lp, line) in [
        (
            "0.37.4",
            "deployments:\n  customImageShaEnabled: false  # turned off during the 2025 incident\n",
            "  customImageShaEnabled: true  # turned off during the 2025 incident",
        ),
        (
            "2.1.0",
            "deployments:\n  runtimeManagement:\n    customImageSha:\n      enabled: false  # turned off during the 2025 incident\n",
            "      enabled: true  # turned off during the 2025 incident",
        ),
        // 2.x moves a flat key; its comment moves along to the nested key's line.
        (
            "2.1.0",
            "deployments:\n  customImageShaEnabled: false  # turned off during the 2025 incident\n",
            "      enabled: true  # turned off during the 2025 incident",
        ),
    ] {
        let mut spec = plain(chart);
        spec.local_production = lp;
        let plat = platform(&bed, "enoff", spec);
        let cm_name = format!("{}-houston-config", plat.release);
        let target = format!("{}/{cm_name}:local-production.yaml", plat.ns);
        // Without a terminal: warned, then refused, nothing changed.
        let o = bed.run(&["enable", "--in-cluster", "--platform-namespace", &plat.ns]);
        o.assert_code(2);
        let warned = o
            .stderr
            .find(&format!(" in {target} was turned off on purpose (false, \"# turned off during the 2025 incident\")"))
            .unwrap_or_else(|| panic!("{chart}: {}", o.stderr));
        let asked = o
            .stderr
            .find("that was off on purpose?")
            .unwrap_or_else(|| panic!("{chart}: {}", o.stderr));
        assert!(warned < asked, "{}", o.stderr);
        // On a terminal: the warning, then the diff, then the question; "n" changes nothing.
        let args = ["enable", "--in-cluster", "--platform-namespace", &plat.ns];
        let (code, shown) = support::on_a_terminal(&bed, &args, b"n");
        assert_eq!(code, 0, "{shown}");
        let at = |needle: &str| {
            shown
                .find(needle)
                .unwrap_or_else(|| panic!("{chart}: {needle:?} not shown:\n{shown}"))
        };
        let (warned, diffed, asked) = (
            at("was turned off on purpose"),
            at(&format!("--- {target}")),
            at("that was off on purpose? [y/N]"),
        );
        assert!(warned < diffed && diffed < asked, "{shown}");
        assert_eq!(
            cm_data(&bed, &plat.ns, &cm_name)["data"]["local-production.yaml"],
            lp
        );
        let o = bed.run(&[
            "enable",
            "--in-cluster",
            "--yes",
            "--platform-namespace",
            &plat.ns,
        ]);
        o.assert_code(0);
        assert!(o.stderr.contains("The comment is kept"), "{}", o.stderr);
        let after = cm_data(&bed, &plat.ns, &cm_name)["data"]["local-production.yaml"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(after.lines().any(|l| l == line), "{chart}:\n{after}");
    }
}

/// `--in-cluster --chart-version` (issue 23): the platform's own version decides. A flag naming
/// the other schema is refused (exit 2, nothing changed); one of the same schema is used and the
/// message says what the platform said; with the Helm release unreadable the note says the
/// version comes from --chart-version, not from Houston's label.
#[test]
fn in_cluster_chart_version_agrees_with_the_platform() {
    let Some(bed) = Bed::get() else { return };
    let plat = platform(&bed, "enver", plain("0.37.4"));
    let cm_name = format!("{}-houston-config", plat.release);
    let before = cm_data(&bed, &plat.ns, &cm_name);
    let base = ["enable", "--in-cluster", "--platform-namespace", &plat.ns];
    let o = bed.run(&[&base[..], &["--yes", "--chart-version", "2.1.0"]].concat());
    o.assert_code(2);
    assert!(
        o.stderr.contains("--chart-version 2.1.0 reads the nested runtimeManagement.customImageSha.enabled form, but the platform is chart 0.37.4 (from Helm release Secret"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("nothing was changed"), "{}", o.stderr);
    assert!(
        o.stderr.contains("hint: drop --chart-version"),
        "{}",
        o.stderr
    );
    assert_eq!(
        cm_data(&bed, &plat.ns, &cm_name)["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    let o = bed.run(&[&base[..], &["--dry-run", "--chart-version", "1.1.0"]].concat());
    o.assert_code(0);
    assert!(
        o.stderr.contains("platform chart 1.1.0 reads the flat form; version from --chart-version; the platform says 0.37.4"),
        "{}",
        o.stderr
    );
    // The Helm release unreadable: the version comes from the flag, and the note says so.
    bed.apply(
        &json!({"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
            "metadata": {"name": format!("sh.helm.release.v1.{}.v3", plat.release), "namespace": plat.ns,
                "labels": {"owner": "helm", "name": plat.release, "status": "deployed", "version": "3"}},
            "stringData": {"release": "not-base64-gzip!"}})
        .to_string(),
    );
    let o = bed.run(&[&base[..], &["--dry-run", "--chart-version", "1.1.0"]].concat());
    o.assert_code(0);
    assert!(
        o.stderr
            .contains("the chart version comes from --chart-version 1.1.0"),
        "{}",
        o.stderr
    );
    assert!(
        !o.stderr.contains("comes from Houston's label"),
        "{}",
        o.stderr
    );
}
