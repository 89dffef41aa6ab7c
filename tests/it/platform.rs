//! What a real Astronomer platform does that the plain fixture does not, on the bed (issue 10
//! §2-§4). APC 2.x reads only the nested feature key; Houston mounts the releases ConfigMap with
//! `subPath` (so only a restart makes it read an import); and corporate networks put a proxy
//! between the user and both the API server and the registries.
//!
//! Each test builds its own platform in its own namespace (Houston, its worker, the ConfigMaps,
//! the Helm release Secret) and passes --platform-namespace, so the shared fixture is untouched.
//! Platform facts are cited from Astronomer's docs and charts (github.com/astronomer/astronomer).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use crate::enable_status::helm_secret;
use crate::support::{self, Bed, Out};

/// Houston's config as Helm renders `astronomer.houston.config` into local-production.yaml.
const LOCAL_PRODUCTION: &str = "publicSignups: false\ndeployments:\n  hardDeleteDeployment: true\n";
const RELEASES_CM: &str = "astro-runtime-base-images";
const RELEASES_KEY: &str = "astro_runtime_releases.json";
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// One platform of a test: namespace, platform release name, and the namespace guard.
struct Apc<'a> {
    bed: &'a Bed,
    ns: String,
    release: String,
    _guard: support::TestNamespace,
}

impl Drop for Apc<'_> {
    fn drop(&mut self) {
        // No second Houston left for other tests' platform discovery, pass or fail.
        let _ = self.bed.kubectl(&[
            "-n",
            &self.ns,
            "delete",
            "deployments,statefulsets",
            "--all",
            "--wait=false",
        ]);
    }
}

struct Spec<'a> {
    /// Platform chart version: Houston's `chart` label and the Helm release Secret. `None`:
    /// neither (the version cannot be read from the cluster).
    chart: Option<&'a str>,
    values: Value,
    local_production: &'a str,
    /// Houston, its worker (Deployments), a StatefulSet and a CronJob mount the releases
    /// ConfigMap with subPath, as the chart's `houston_volume_mounts` does.
    releases_mounted: bool,
}

fn spec(chart: Option<&'static str>, local_production: &'static str) -> Spec<'static> {
    Spec {
        chart,
        values: json!({"astronomer": {"houston": {"config": {"deployments": {"hardDeleteDeployment": true}}}}}),
        local_production,
        releases_mounted: false,
    }
}

/// A pod template mounting `<release>-houston-config` (and the releases ConfigMap when asked)
/// with subPath, as astronomer/astronomer's `houston_volume_mounts` renders it.
fn houston_template(release: &str, component: &str, releases: bool) -> Value {
    let mut volumes = vec![
        json!({"name": "houston-config-volume", "configMap": {"name": format!("{release}-houston-config")}}),
    ];
    let mut mounts = vec![
        json!({"name": "houston-config-volume", "mountPath": "/houston/config/local-production.yaml", "subPath": "local-production.yaml"}),
    ];
    if releases {
        volumes.push(json!({"name": "runtime-releases", "configMap": {"name": RELEASES_CM}}));
        mounts.push(json!({"name": "runtime-releases", "mountPath": "/houston/astro_runtime_releases.json", "subPath": RELEASES_KEY}));
    }
    json!({"metadata": {"labels": {"component": component, "release": release},
            "annotations": {"checksum/houston-config": "abc"}},
        "spec": {"containers": [{"name": component, "image": "quay.io/astronomer/ap-houston-api:1.0.0", "volumeMounts": mounts}],
            "volumes": volumes, "restartPolicy": "Always"}})
}

fn apc<'a>(bed: &'a Bed, prefix: &str, s: Spec) -> Apc<'a> {
    let guard = bed.namespace(prefix);
    let ns = guard.name.clone();
    let release = format!("{prefix}plat");
    let mut labels = json!({"tier": "astronomer", "component": "houston", "release": release});
    if let Some(c) = s.chart {
        labels["chart"] = json!(format!("astronomer-{c}"));
    }
    let selector =
        |component: &str| json!({"matchLabels": {"component": component, "release": release}});
    let mut items = vec![
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": format!("{release}-houston"), "namespace": ns, "labels": labels},
            "spec": {"replicas": 1, "selector": selector("houston"),
                "template": houston_template(&release, "houston", s.releases_mounted)}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("{release}-houston-config"), "namespace": ns},
            "data": {"production.yaml": "nodeEnv: production\n", "local-production.yaml": s.local_production}}),
        // A Deployment that mounts neither: never restarted.
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": format!("{release}-commander"), "namespace": ns, "labels": {"component": "commander", "release": release}},
            "spec": {"replicas": 1, "selector": selector("commander"),
                "template": {"metadata": {"labels": {"component": "commander", "release": release}},
                    "spec": {"containers": [{"name": "commander", "image": "quay.io/astronomer/ap-commander:1.0.0"}]}}}}),
    ];
    if s.releases_mounted {
        items.push(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": format!("{release}-houston-worker"), "namespace": ns, "labels": {"component": "houston-worker", "release": release}},
            "spec": {"replicas": 1, "selector": selector("houston-worker"),
                "template": houston_template(&release, "houston-worker", true)}}));
        items.push(json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": format!("{release}-catalog-reader"), "namespace": ns, "labels": {"component": "catalog-reader", "release": release}},
            "spec": {"replicas": 1, "serviceName": "reader", "selector": selector("catalog-reader"),
                "template": houston_template(&release, "catalog-reader", true)}}));
    }
    if let Some(c) = s.chart {
        items.push(helm_secret(&ns, &release, 1, "deployed", c, &s.values));
    }
    bed.apply(&json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string());
    if s.releases_mounted {
        // Kubernetes 1.20 serves CronJob as batch/v1beta1 only (testbed.md).
        let mut t = houston_template(&release, "update-runtime-check", true);
        t["spec"]["restartPolicy"] = json!("Never");
        bed.apply(
            &json!({"apiVersion": "batch/v1beta1", "kind": "CronJob",
                "metadata": {"name": format!("{release}-update-runtime-check"), "namespace": ns},
                "spec": {"schedule": "0 0 * * *", "jobTemplate": {"spec": {"template": t}}}})
            .to_string(),
        );
    }
    Apc {
        bed,
        ns,
        release,
        _guard: guard,
    }
}

impl Apc<'_> {
    fn local_production(&self) -> String {
        self.bed.get_json(&[
            "-n",
            &self.ns,
            "configmap",
            &format!("{}-houston-config", self.release),
        ])["data"]["local-production.yaml"]
            .as_str()
            .expect("local-production.yaml")
            .to_string()
    }

    /// (generation, restartedAt) of a workload: a restart bumps both, exactly once per patch.
    fn rollout(&self, kind_name: &str) -> (i64, Option<String>) {
        let v = self.bed.get_json(&["-n", &self.ns, kind_name]);
        (
            v["metadata"]["generation"].as_i64().expect("generation"),
            v["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
                .as_str()
                .map(str::to_string),
        )
    }

    fn houston(&self) -> String {
        format!("deployment/{}-houston", self.release)
    }
    fn worker(&self) -> String {
        format!("deployment/{}-houston-worker", self.release)
    }
    fn reader(&self) -> String {
        format!("statefulset/{}-catalog-reader", self.release)
    }
    fn commander(&self) -> String {
        format!("deployment/{}-commander", self.release)
    }

    fn run(&self, args: &[&str]) -> Out {
        let mut a = args.to_vec();
        a.extend(["--platform-namespace", &self.ns]);
        self.bed.run(&a)
    }
}

// ---------------------------------------------------------------------------------------------
// §2: APC 2.x reads only the nested key.
//
// https://www.astronomer.io/docs/astro-private-cloud/v-2-x/breaking-changes-removals: platform chart 2.x renamed the flag to
// `deployments.runtimeManagement.customImageSha.enabled` (Houston 2.0's default config), and
// Astronomer's APC 2.x breaking-changes page says 2.0 "silently ignores any values.yaml overrides
// that use the old key paths under astronomer.houston.config.deployments". 0.37.x and 1.x read
// only the flat `customImageShaEnabled`.
// ---------------------------------------------------------------------------------------------

/// On 2.x, `--in-cluster` moves a flat key in local-production.yaml to the nested one (the diff
/// shows the removal) and restarts what mounts the config; `status` saw the flat-only platform
/// as OFF, with the fix.
#[test]
fn apc2_in_cluster_moves_the_flat_key_and_status_saw_it_off() {
    let Some(bed) = Bed::get() else { return };
    let lp = "publicSignups: false\ndeployments:\n  customImageShaEnabled: true\n  hardDeleteDeployment: true\n";
    let mut s = spec(Some("2.1.0"), lp);
    s.values = json!({"astronomer": {"houston": {"config": {"deployments": {"customImageShaEnabled": true}}}}});
    let p = apc(&bed, "apc2", s);

    let o = p.run(&["status", "-o", "json"]);
    o.assert_code(0);
    let v = o.json();
    assert_eq!(v["platform"]["chartVersion"], "2.1.0");
    assert_eq!(
        v["feature"]["enabled"], false,
        "flat-only on 2.x is OFF: {v}"
    );
    assert_eq!(v["feature"]["localProduction"]["enabled"], false);
    assert_eq!(v["feature"]["helmValues"]["enabled"], false);
    let problems = v["problems"].as_array().expect("problems");
    let flag = problems
        .iter()
        .find(|p| {
            p["problem"]
                .as_str()
                .unwrap_or_default()
                .contains("feature flag is off")
        })
        .unwrap_or_else(|| panic!("flag problem: {problems:?}"));
    assert!(
        flag["problem"]
            .as_str()
            .unwrap()
            .contains("APC 2.x (chart 2.1.0) ignores the flat key and reads only runtimeManagement.customImageSha.enabled"),
        "{flag}"
    );
    assert!(
        flag["fix"]
            .as_str()
            .unwrap()
            .contains("--chart-version 2.1.0"),
        "{flag}"
    );
    p.run(&["status", "--check"]).assert_code(1);

    let (gen, _) = p.rollout(&p.houston());
    let o = p.run(&["enable", "--in-cluster", "--yes"]);
    o.assert_code(0);
    assert!(
        o.stdout.contains("-  customImageShaEnabled: true\n"),
        "the diff (on stdout, issue 23) shows the removal: {}",
        o.stdout
    );
    assert!(
        o.stderr.contains("silently ignores the old key"),
        "{}",
        o.stderr
    );
    assert_eq!(
        p.local_production(),
        "publicSignups: false\ndeployments:\n  hardDeleteDeployment: true\n  runtimeManagement:\n    customImageSha:\n      enabled: true\n"
    );
    let (gen2, at) = p.rollout(&p.houston());
    assert_eq!(gen2, gen + 1, "Houston restarted once");
    assert!(at.is_some());
    assert_eq!(
        p.rollout(&p.commander()).1,
        None,
        "what does not mount the config stays"
    );
    // Now Houston's config counts; the Helm values still hold the dead flat key.
    let v = p.run(&["status", "-o", "json"]).json();
    assert_eq!(v["feature"]["localProduction"]["enabled"], true, "{v}");
    assert_eq!(v["feature"]["helmValues"]["enabled"], false, "{v}");
    assert_eq!(v["feature"]["disagree"], true, "{v}");
}

/// 0.37.x and 1.x get the flat key in the cluster; a nested key there is reported and left.
#[test]
fn before_2x_in_cluster_writes_the_flat_key_and_reports_a_nested_one() {
    let Some(bed) = Bed::get() else { return };
    for chart in ["0.37.4", "1.1.0"] {
        let lp = "deployments:\n  runtimeManagement:\n    customImageSha:\n      enabled: true\n";
        let p = apc(&bed, "apc1", spec(Some(chart), lp));
        let v = p.run(&["status", "-o", "json"]).json();
        assert_eq!(
            v["feature"]["enabled"], false,
            "{chart}: 0.37/1.x ignore the nested key: {v}"
        );
        let o = p.run(&["enable", "--in-cluster", "--yes"]);
        o.assert_code(0);
        assert!(
            o.stderr.contains(&format!("but platform chart {chart} (0.37.x/1.x) reads only deployments.customImageShaEnabled")),
            "{chart}: {}",
            o.stderr
        );
        assert_eq!(
            p.local_production(),
            format!("{lp}  customImageShaEnabled: true\n"),
            "{chart}"
        );
        let v = p.run(&["status", "-o", "json"]).json();
        assert_eq!(
            v["feature"]["localProduction"]["enabled"], true,
            "{chart}: {v}"
        );
    }
}

/// No chart version anywhere (no Helm release Secret, no chart label, no 2.x-only key): the live
/// change is refused with exit 2, naming --chart-version; nothing is patched or restarted. With
/// --chart-version it goes through.
#[test]
fn unknown_version_in_cluster_is_refused() {
    let Some(bed) = Bed::get() else { return };
    let lp = "deployments:\n  customImageShaEnabled: true\n";
    let p = apc(&bed, "apcx", spec(None, lp));
    let o = p.run(&["enable", "--in-cluster", "--yes"]);
    o.assert_code(2);
    assert!(
        o.stderr
            .contains("cannot tell which platform chart version"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("no chart label"), "{}", o.stderr);
    assert!(
        o.stderr.contains("hint: pass --chart-version"),
        "{}",
        o.stderr
    );
    assert_eq!(p.local_production(), lp, "untouched");
    assert_eq!(p.rollout(&p.houston()).1, None, "not restarted");
    // status says it cannot tell rather than guessing.
    let v = p.run(&["status", "-o", "json"]).json();
    assert_eq!(v["feature"]["enabled"], Value::Null, "{v}");
    // The values file has the same rule, with the cluster unable to tell too.
    let dir = tempfile::tempdir().unwrap();
    let values = support::write_file(
        dir.path(),
        "values.yaml",
        "astronomer:\n  houston:\n    config:\n      deployments:\n        customImageShaEnabled: true\n",
    );
    let before = std::fs::read_to_string(&values).unwrap();
    let o = p.run(&["enable", "--values", values.to_str().unwrap()]);
    o.assert_code(2);
    assert!(
        o.stderr.contains("hint: pass --chart-version"),
        "{}",
        o.stderr
    );
    assert_eq!(std::fs::read_to_string(&values).unwrap(), before);
    // An explicit version decides.
    p.run(&[
        "enable",
        "--in-cluster",
        "--yes",
        "--chart-version",
        "2.0.0",
    ])
    .assert_code(0);
    assert_eq!(
        p.local_production(),
        "deployments:\n  runtimeManagement:\n    customImageSha:\n      enabled: true\n"
    );
}

// ---------------------------------------------------------------------------------------------
// §3: Houston reads the releases catalog through a subPath mount.
//
// astronomer/astronomer charts/astronomer/templates/_helpers.yaml: the chart mounts the ConfigMap into Houston's API, its
// worker, every houston CronJob and the hooks with `subPath: astro_runtime_releases.json`; the
// kubelet never updates a subPath mount (kubernetes/kubernetes#50345), so Houston keeps the old
// file until its pods restart. `kubectl rollout restart` sets the pod template annotation
// kubectl.kubernetes.io/restartedAt.
// ---------------------------------------------------------------------------------------------

fn catalog_file(dir: &std::path::Path) -> std::path::PathBuf {
    let entry = |v: &str| json!({"metadata": {"airflowVersion": "2.5.0", "channel": "stable", "releaseDate": "2023-01-01"}, "migrations": {"airflowDatabase": false}, "x-note": v});
    support::write_file(
        dir,
        "catalog.json",
        &json!({"version": "1.0", "runtimeVersions": {"5.0.0": entry("a"), "5.1.0": entry("b")}})
            .to_string(),
    )
}

fn import(p: &Apc, file: &std::path::Path, versions: &str, extra: &[&str]) -> Out {
    let repo = format!("{}/astronomer/astro-runtime", p.bed.reg_token);
    let mut args = vec![
        "import",
        "--source",
        file.to_str().unwrap(),
        "--airflow2-repository",
        &repo,
        "--versions",
        versions,
        // Every writing command needs --yes without a terminal (issue 10 §6).
        "--yes",
    ];
    args.extend_from_slice(extra);
    p.run(&args)
}

/// An import that changes the catalog restarts Houston, its worker and the StatefulSet that
/// mount it (once each) and names the CronJob; an import that changes nothing restarts nothing;
/// a dry run says what it would restart and restarts nothing.
#[test]
fn import_restarts_what_mounts_the_catalog_once_and_only_after_a_change() {
    let Some(bed) = Bed::get() else { return };
    let mut s = spec(Some("1.1.0"), LOCAL_PRODUCTION);
    s.releases_mounted = true;
    let p = apc(&bed, "sub", s);
    let dir = tempfile::tempdir().unwrap();
    let file = catalog_file(dir.path());
    let mounted = [p.houston(), p.worker(), p.reader()];
    let before: Vec<(i64, Option<String>)> = mounted.iter().map(|w| p.rollout(w)).collect();

    let o = import(&p, &file, "5.0.0", &["--dry-run"]);
    o.assert_code(0);
    for w in &mounted {
        assert!(
            o.stderr.contains(w.as_str()),
            "dry run names {w}: {}",
            o.stderr
        );
    }
    assert!(o.stderr.contains("dry run: would restart"), "{}", o.stderr);
    let after: Vec<(i64, Option<String>)> = mounted.iter().map(|w| p.rollout(w)).collect();
    assert_eq!(after, before, "a dry run restarts nothing");

    let o = import(&p, &file, "5.0.0", &[]);
    o.assert_code(0);
    let line = o
        .stderr
        .lines()
        .find(|l| l.starts_with("restarted "))
        .unwrap_or_else(|| panic!("a restart line: {}", o.stderr));
    for w in &mounted {
        assert!(line.contains(w.as_str()), "{w} in {line}");
    }
    assert!(!o.stderr.contains(&p.commander()), "{}", o.stderr);
    assert!(
        o.stderr
            .contains(&format!("cronjob/{}-update-runtime-check", p.release))
            && o.stderr.contains("on its next run"),
        "{}",
        o.stderr
    );
    for (w, (gen, _)) in mounted.iter().zip(&before) {
        let (g, at) = p.rollout(w);
        assert_eq!(g, gen + 1, "{w} restarted exactly once");
        assert!(at.is_some(), "{w} has restartedAt");
    }
    assert_eq!(p.rollout(&p.commander()).1, None);
    let restarted: Vec<(i64, Option<String>)> = mounted.iter().map(|w| p.rollout(w)).collect();

    // The same import again changes nothing, so restarts nothing.
    let o = import(&p, &file, "5.0.0", &[]);
    o.assert_code(0);
    assert!(
        o.stderr.contains("did not change: nothing was restarted"),
        "{}",
        o.stderr
    );
    let again: Vec<(i64, Option<String>)> = mounted.iter().map(|w| p.rollout(w)).collect();
    assert_eq!(again, restarted, "a no-op import restarts nothing");

    // JSON says what restarted.
    let o = import(&p, &file, "5.0.0,5.1.0", &["-o", "json"]);
    o.assert_code(0);
    let listed: Vec<String> = o.json()["restarted"]
        .as_array()
        .expect("restarted")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, vec![p.houston(), p.worker(), p.reader()]);
}

/// `--no-restart` writes the catalog, restarts nothing and prints the exact command.
#[test]
fn no_restart_prints_the_exact_command() {
    let Some(bed) = Bed::get() else { return };
    let mut s = spec(Some("1.1.0"), LOCAL_PRODUCTION);
    s.releases_mounted = true;
    let p = apc(&bed, "nor", s);
    let dir = tempfile::tempdir().unwrap();
    let file = catalog_file(dir.path());
    let o = import(&p, &file, "5.0.0", &["--no-restart"]);
    o.assert_code(0);
    let command = format!(
        "kubectl -n {} rollout restart {} {} {}",
        p.ns,
        p.houston(),
        p.worker(),
        p.reader()
    );
    assert!(o.stderr.contains(&command), "{command:?} in {}", o.stderr);
    for w in [p.houston(), p.worker(), p.reader()] {
        assert_eq!(p.rollout(&w).1, None, "{w} not restarted");
    }
    let cm = bed.get_json(&["-n", &p.ns, "configmap", RELEASES_CM]);
    assert!(
        cm["data"][RELEASES_KEY].as_str().unwrap().contains("5.0.0"),
        "written"
    );
    // That command is what kubectl runs.
    let args: Vec<&str> = command.split(' ').skip(1).collect();
    let k = bed.kubectl(&args);
    assert!(k.ok(), "{}", k.stderr);
    assert!(p.rollout(&p.houston()).1.is_some());
}

/// Restarting needs `patch` on deployments: without it the import stops before writing (the
/// catalog would otherwise sit unread), and says --no-restart is the way around.
#[test]
fn missing_patch_right_stops_the_import_before_writing() {
    let Some(bed) = Bed::get() else { return };
    let mut s = spec(Some("1.1.0"), LOCAL_PRODUCTION);
    s.releases_mounted = true;
    let p = apc(&bed, "rbr", s);
    let user = "limited1";
    let role = std::fs::read_to_string(support::repo_root().join("docs/rbac-import.yaml"))
        .unwrap()
        .replace("namespace: astronomer", &format!("namespace: {}", p.ns))
        .replace("name: jane@example.com", &format!("name: {user}"));
    // The documented Role without its patch rule.
    let without_patch = role.replace("verbs: [\"patch\"]", "verbs: [\"get\"]");
    assert_ne!(
        without_patch, role,
        "docs/rbac-import.yaml grants patch for the restart"
    );
    bed.apply(&without_patch);
    let dir = tempfile::tempdir().unwrap();
    let file = catalog_file(dir.path());
    let o = import(
        &p,
        &file,
        "5.0.0",
        &["--context", &format!("testbed-{user}")],
    );
    o.assert_code(2);
    assert!(
        o.stderr
            .contains("forbidden: cannot patch deployments.apps"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("--no-restart"), "{}", o.stderr);
    let k = bed.kubectl(&["-n", &p.ns, "get", "configmap", RELEASES_CM]);
    assert!(!k.ok(), "nothing was written");
    // The documented Role as it is: enough.
    bed.apply(&role);
    import(
        &p,
        &file,
        "5.0.0",
        &["--context", &format!("testbed-{user}")],
    )
    .assert_code(0);
    assert!(p.rollout(&p.worker()).1.is_some());
}

/// `status`: a Houston pod that started before the catalog last changed reads an older one;
/// the fix restarts what mounts it. A pod started after the change is fine.
#[test]
fn status_sees_a_houston_that_reads_an_older_catalog() {
    let Some(bed) = Bed::get() else { return };
    let mut s = spec(
        Some("1.1.0"),
        "deployments:\n  customImageShaEnabled: true\n",
    );
    s.releases_mounted = true;
    s.values = json!({"astronomer": {"houston": {"runtimeReleasesConfigMapName": RELEASES_CM, "config": {"deployments": {"customImageShaEnabled": true}}}}});
    let p = apc(&bed, "stl", s);
    let dir = tempfile::tempdir().unwrap();
    let file = catalog_file(dir.path());
    import(&p, &file, "5.0.0", &["--no-restart"]).assert_code(0);
    let cm = bed.get_json(&["-n", &p.ns, "configmap", RELEASES_CM]);
    let changed = cm["metadata"]["annotations"]["astro-sha.astronomer.io/catalog-changed-at"]
        .as_str()
        .expect("import records when the catalog changed")
        .to_string();

    // A Houston pod (no kubelet here: the pod and its status are written as a kubelet would).
    let pod = |name: &str, started: &str| {
        let mut t = houston_template(&p.release, "houston", true);
        t["spec"]["automountServiceAccountToken"] = json!(false);
        bed.apply(
            &json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": p.ns, "labels": t["metadata"]["labels"]},
                "spec": t["spec"]})
            .to_string(),
        );
        let k = bed.kubectl(&[
            "-n",
            &p.ns,
            "patch",
            "pod",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &json!({"status": {"phase": "Running", "startTime": started}}).to_string(),
        ]);
        assert!(k.ok(), "pods/status: {}", k.stderr);
    };
    pod("houston-old", "2020-01-01T00:00:00Z");
    let v = p.run(&["status", "-o", "json"]).json();
    let stale = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| {
            x["problem"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Houston reads an older catalog")
        })
        .unwrap_or_else(|| panic!("stale Houston reported: {v}"))
        .clone();
    assert!(
        stale["problem"]
            .as_str()
            .unwrap()
            .contains("houston-old (started 2020-01-01T00:00:00Z)"),
        "{stale}"
    );
    assert!(
        stale["problem"].as_str().unwrap().contains(&changed),
        "{stale}"
    );
    assert_eq!(
        stale["fix"],
        format!(
            "kubectl -n {} rollout restart {} {} {}",
            p.ns,
            p.houston(),
            p.worker(),
            p.reader()
        )
    );
    assert_eq!(v["releasesConfigMap"]["stalePods"][0]["pod"], "houston-old");
    p.run(&["status", "--check"]).assert_code(1);

    // The restarted pod replaces it: in order.
    bed.kubectl(&[
        "-n",
        &p.ns,
        "delete",
        "pod",
        "houston-old",
        "--grace-period=0",
        "--force",
    ]);
    pod("houston-new", "2099-01-01T00:00:00Z");
    let v = p.run(&["status", "-o", "json"]).json();
    assert_eq!(v["releasesConfigMap"]["stalePods"], json!([]), "{v}");
    assert!(
        !v["problems"].to_string().contains("older catalog"),
        "{}",
        v["problems"]
    );
}

// ---------------------------------------------------------------------------------------------
// §4: proxies, as kubectl, docker and containerd use them.
//
// kubectl (client-go) and docker/containerd are Go programs: without a kubeconfig `proxy-url`
// they use net/http.ProxyFromEnvironment (golang.org/x/net/http/httpproxy): HTTPS_PROXY for
// https:// targets, HTTP_PROXY for http://, NO_PROXY exceptions, and never a proxy for
// localhost or a loopback address. A kubeconfig cluster's `proxy-url` (clientcmd:
// `http.ProxyURL`) carries every request to that API server, loopback included. The bed is on
// loopback, so a registry is reached through the proxy by a name only the proxy resolves
// (`registry.bed.test`, mapped to 127.0.0.1 by scripts/testbed-lib/connect_proxy.py), as a
// corporate proxy resolves names the workstation cannot.
// ---------------------------------------------------------------------------------------------

/// The test-bed proxy, killed when dropped; its JSON-lines log says what it carried.
struct ConnectProxy {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl ConnectProxy {
    fn start(dir: &std::path::Path) -> ConnectProxy {
        let log = dir.join("proxy.jsonl");
        let mut child = Command::new("python3")
            .arg(support::repo_root().join("scripts/testbed-lib/connect_proxy.py"))
            .args([
                "--log",
                log.to_str().unwrap(),
                "--ttl",
                "120",
                "--map",
                "registry.bed.test=127.0.0.1",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start connect_proxy.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("port line");
        let port = line.trim().parse().expect("proxy port");
        ConnectProxy { child, port, log }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// (method, target) of every request it carried.
    fn carried(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("proxy log line");
                (
                    v["method"].as_str().unwrap_or_default().to_string(),
                    v["target"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    fn raw_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An import talks to both: the API server (ConfigMap) and the registry (tags).
fn proxied_import(
    bed: &Bed,
    ns: &str,
    dir: &std::path::Path,
    envs: &[(&str, String)],
    kubeconfig: Option<&std::path::Path>,
) -> Out {
    let file = catalog_file(dir);
    let reg = format!(
        "registry.bed.test:{}",
        bed.reg_tls.rsplit(':').next().unwrap()
    );
    let repo = format!("{reg}/astronomer/astro-runtime");
    let args = [
        "import",
        "--platform-namespace",
        ns,
        "--source",
        file.to_str().unwrap(),
        "--airflow2-repository",
        &repo,
        "--versions",
        "5.0.0",
        // The bed's CA names 127.0.0.1 and localhost, not this name: unverified TLS for it only.
        "--insecure-registry",
        &reg,
        "-v",
        "--yes",
    ];
    bed.run_with(&args, |c| {
        for k in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "NO_PROXY",
            "no_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            c.env_remove(k);
        }
        for (k, v) in envs {
            c.env(k, v);
        }
        if let Some(k) = kubeconfig {
            c.env("KUBECONFIG", k);
        }
    })
}

/// The usual corporate setup: HTTPS_PROXY set, the API server in NO_PROXY. It works (kubectl
/// does), API traffic goes direct, registry traffic through the proxy.
#[test]
fn https_proxy_with_the_api_server_in_no_proxy() {
    let Some(bed) = Bed::get() else { return };
    let dir = tempfile::tempdir().unwrap();
    let proxy = ConnectProxy::start(dir.path());
    let ns = bed.namespace("prx");
    let o = proxied_import(
        &bed,
        &ns,
        dir.path(),
        &[
            ("HTTPS_PROXY", proxy.url()),
            ("NO_PROXY", "127.0.0.1,localhost".into()),
        ],
        None,
    );
    o.assert_code(0);
    let carried = proxy.carried();
    let reg = format!(
        "registry.bed.test:{}",
        bed.reg_tls.rsplit(':').next().unwrap()
    );
    assert!(
        carried.contains(&("CONNECT".into(), reg.clone())),
        "registry through the proxy: {carried:?}"
    );
    assert!(
        !carried.iter().any(|(_, t)| t == &bed.api),
        "API server direct: {carried:?}"
    );
    let cm = bed.get_json(&["-n", &ns, "configmap", RELEASES_CM]);
    let digest = bed.seeded_digest("astronomer/astro-runtime", "5.0.0");
    let releases = cm["data"][RELEASES_KEY].as_str().unwrap();
    assert!(
        releases.contains(&digest),
        "5.0.0 resolved through the proxy to {digest}: {releases}"
    );
}

/// Everything through the proxy: the kubeconfig's proxy-url for the API server (even with
/// NO_PROXY naming it: client-go uses proxy-url for every request), HTTPS_PROXY for the
/// registry. The proxy's log and ours show the CONNECTs and never a credential.
#[test]
fn all_traffic_through_the_proxy_and_no_credential_in_any_log() {
    let Some(bed) = Bed::get() else { return };
    let dir = tempfile::tempdir().unwrap();
    let proxy = ConnectProxy::start(dir.path());
    let with_creds = format!("http://proxyuser:pr0xy-s3cret@127.0.0.1:{}", proxy.port);
    // The bed's kubeconfig with proxy-url on its cluster.
    let mut kc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&bed.kubeconfig).unwrap()).unwrap();
    for c in kc["clusters"].as_sequence_mut().expect("clusters") {
        c["cluster"]["proxy-url"] = serde_yaml_ng::Value::String(with_creds.clone());
    }
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, serde_yaml_ng::to_string(&kc).unwrap()).unwrap();
    let ns = bed.namespace("prx");
    let o = proxied_import(
        &bed,
        &ns,
        dir.path(),
        &[
            ("HTTPS_PROXY", with_creds.clone()),
            ("NO_PROXY", "127.0.0.1".into()),
        ],
        Some(&kubeconfig),
    );
    o.assert_code(0);
    let carried = proxy.carried();
    let reg = format!(
        "registry.bed.test:{}",
        bed.reg_tls.rsplit(':').next().unwrap()
    );
    assert!(
        carried.contains(&("CONNECT".into(), bed.api.clone())),
        "API server through the proxy: {carried:?}"
    );
    assert!(
        carried.contains(&("CONNECT".into(), reg)),
        "registry through the proxy: {carried:?}"
    );
    let token = kc["users"][0]["user"]["token"]
        .as_str()
        .unwrap_or("no-token-in-kubeconfig");
    for (what, text) in [
        ("proxy log", proxy.raw_log()),
        ("our stderr", o.stderr.clone()),
        ("our stdout", o.stdout.clone()),
    ] {
        assert!(
            !text.contains("pr0xy-s3cret"),
            "{what} shows the proxy password:\n{text}"
        );
        assert!(!text.contains(token), "{what} shows the API token");
    }
    assert!(
        o.stderr.contains("http://***@127.0.0.1"),
        "-v names the proxy without its credentials: {}",
        o.stderr
    );
}

/// Loopback is never proxied through HTTPS_PROXY (Go's httpproxy), so a registry on 127.0.0.1
/// is reached direct, as docker reaches it; and a proxy value that is not a proxy URL is a
/// clear error before anything is sent.
#[test]
fn loopback_is_direct_and_a_bad_proxy_value_is_named() {
    let Some(bed) = Bed::get() else { return };
    let dir = tempfile::tempdir().unwrap();
    let proxy = ConnectProxy::start(dir.path());
    let image = format!("{}/astronomer/astro-runtime:5.0.0", bed.reg_tls);
    let o = bed.run_with(&["resolve", &image], |c| {
        c.env("HTTPS_PROXY", proxy.url())
            .env_remove("NO_PROXY")
            .env_remove("no_proxy");
    });
    o.assert_code(0);
    assert_eq!(
        proxy.carried(),
        vec![],
        "loopback never goes through the proxy"
    );
    let o = bed.run_with(&["resolve", &image], |c| {
        c.env("HTTPS_PROXY", "socks5://u:hidden@127.0.0.1:1080");
    });
    o.assert_code(2);
    assert!(
        o.stderr.contains("HTTPS_PROXY") && o.stderr.contains("SOCKS"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("hidden"), "{}", o.stderr);
}

/// A plain-HTTP registry goes through HTTP_PROXY (absolute-form requests, as Go's transport
/// sends them), and HTTPS_PROXY alone does not apply to it (no fallback between the two). A guard
/// on the registry client's proxy wiring: reqwest's own reading agreed here, so this fails only if
/// the explicit choice stops reaching the client.
#[test]
fn http_proxy_carries_a_plain_http_registry() {
    let Some(bed) = Bed::get() else { return };
    let dir = tempfile::tempdir().unwrap();
    let proxy = ConnectProxy::start(dir.path());
    let reg = format!(
        "registry.bed.test:{}",
        bed.reg_plain.rsplit(':').next().unwrap()
    );
    let image = format!("{reg}/astronomer/astro-runtime:5.0.0");
    let o = bed.run_with(
        &["resolve", &image, "--insecure-registry", &reg, "-o", "json"],
        |c| {
            c.env("HTTP_PROXY", proxy.url())
                .env_remove("HTTPS_PROXY")
                .env_remove("https_proxy")
                .env_remove("NO_PROXY")
                .env_remove("no_proxy");
        },
    );
    o.assert_code(0);
    let carried = proxy.carried();
    let manifest = format!("http://{reg}/v2/astronomer/astro-runtime/manifests/5.0.0");
    assert!(carried.contains(&("GET".into(), manifest)), "{carried:?}");
    let digest = bed.seeded_digest("astronomer/astro-runtime", "5.0.0");
    assert!(
        o.stdout.contains(&digest),
        "resolved through the proxy to {digest}: {}",
        o.stdout
    );
    // With only HTTPS_PROXY set, the plain-HTTP attempt goes direct (the name does not resolve
    // outside the proxy, so the lookup fails): only the HTTPS attempt an insecure registry gets
    // first went through the proxy, as a CONNECT; no plain GET did.
    let gets = |c: &[(String, String)]| c.iter().filter(|(m, _)| m == "GET").count();
    let before = gets(&proxy.carried());
    let o = bed.run_with(&["resolve", &image, "--insecure-registry", &reg], |c| {
        c.env("HTTPS_PROXY", proxy.url())
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy");
    });
    assert_ne!(o.code, 0, "{}", o.stderr);
    let carried = proxy.carried();
    assert_eq!(gets(&carried), before, "{carried:?}");
    assert!(
        carried.contains(&("CONNECT".into(), reg.clone())),
        "{carried:?}"
    );
}
