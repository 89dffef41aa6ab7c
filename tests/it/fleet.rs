//! Fleet scale against the API server (issue 18): lists read in pages (`--chunk-size`, `limit` /
//! `continue`), a continue token that expired mid-list (410 Gone) starting the list over,
//! responses compressed (gzip negotiated), and releases written in parallel with one failing in
//! the middle. The API proxy (`support::faults::Proxy`) in front of the bed's kube-apiserver
//! logs every request (its query, its Accept-Encoding, the answer's Content-Encoding and size)
//! and injects the 410 and the failed write.

use crate::support::faults::{object_states, Proxy};
use crate::support::{airflow_release_yaml, Bed, Out, TestNamespace};
use serde_json::{json, Value};

const REPO: &str = "astronomer/astro-runtime";
const TAG: &str = "12.1.0";
const NEW_TAG: &str = "12.2.0";

/// One tag-only release (its scheduler a StatefulSet) in a namespace of its own per prefix;
/// each release is named after its namespace, `<namespace>-r`.
fn tag_only_releases(bed: &Bed, prefixes: &[&str]) -> (Vec<TestNamespace>, Vec<String>) {
    let image = format!("{}/{REPO}:{TAG}", bed.reg_token);
    let nss: Vec<TestNamespace> = prefixes.iter().map(|p| bed.namespace(p)).collect();
    let rels: Vec<String> = nss.iter().map(|ns| format!("{ns}-r")).collect();
    for (ns, rel) in nss.iter().zip(&rels) {
        bed.apply(&airflow_release_yaml(ns, rel, &image, "StatefulSet"));
    }
    (nss, rels)
}

/// A release whose scheduler is a Deployment (three Deployments: scheduler, webserver, statsd)
/// and three webserver pods reporting what they run: the first two `first`'s digest, the third
/// `third`'s. Listed two at a time, the third pod is on the second page.
fn release_with_pods(bed: &Bed, prefix: &str) -> (TestNamespace, String) {
    let ns = bed.namespace(prefix);
    let rel = format!("{prefix}-rel");
    let image = format!("{}/{REPO}:{TAG}", bed.reg_token);
    bed.apply(&airflow_release_yaml(&ns, &rel, &image, "Deployment"));
    let id = |tag: &str| {
        format!(
            "docker-pullable://{}/{REPO}@{}",
            bed.reg_token,
            bed.seeded_digest(REPO, tag)
        )
    };
    for (i, tag) in [TAG, TAG, NEW_TAG].iter().enumerate() {
        let name = format!("{rel}-webserver-{i}");
        bed.apply(
            &json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": &*ns,
                    "labels": {"tier": "airflow", "component": "webserver", "release": &rel}},
                "spec": {"automountServiceAccountToken": false,
                    "containers": [{"name": "webserver", "image": "placeholder"}]}})
            .to_string(),
        );
        let status = json!({"status": {"containerStatuses": [{"name": "webserver",
            "image": "placeholder", "imageID": id(tag), "ready": true, "restartCount": 0}]}});
        bed.set_pod_status(&ns, &name, &status);
    }
    (ns, rel)
}

fn run_via(bed: &Bed, proxy: &Proxy, args: &[&str]) -> Out {
    let kubeconfig = proxy.kubeconfig(&bed.kubeconfig);
    bed.run_with(args, |c| {
        c.env("KUBECONFIG", &kubeconfig);
    })
}

/// The list requests (GET, no object name) of `resource` in `ns`, as logged after `mark`: their
/// query and status.
fn lists(proxy: &Proxy, mark: usize, ns: &str, resource: &str) -> Vec<(String, String)> {
    let prefix = format!("/namespaces/{ns}/{resource}?");
    proxy
        .requests()
        .into_iter()
        .skip(mark)
        .filter(|r| r["method"] == "GET")
        .filter_map(|r| {
            let path = r["path"].as_str()?.to_string();
            let (_, query) = path.split_once(&prefix)?;
            Some((query.to_string(), r["status"].to_string()))
        })
        .collect()
}

/// `show` reads every page: with `--chunk-size 2` the Deployments (three) and the pods (three)
/// come in two requests each, the second carrying the first's continue token, and the answer
/// is the unpaged one, the third pod's different build (second page) included. With
/// `--chunk-size 0` each list is one request without `limit`.
#[test]
fn lists_are_read_in_pages_of_chunk_size() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel) = release_with_pods(&bed, "paged");
    let proxy = Proxy::apiserver(&bed.dir, &bed.api, json!([]));
    let show = |chunk: &str| {
        let out = run_via(
            &bed,
            &proxy,
            &["show", &rel, "-n", &ns, "-o", "json", "--chunk-size", chunk],
        );
        out.assert_code(0);
        out.stdout
    };
    let mark = proxy.mark();
    let paged = show("2");
    for resource in ["deployments", "pods"] {
        let got = lists(&proxy, mark, &ns, resource);
        assert_eq!(got.len(), 2, "{resource}: {got:#?}");
        assert!(
            got[0].0.contains("limit=2") && !got[0].0.contains("continue="),
            "{got:?}"
        );
        assert!(
            got[1].0.contains("limit=2") && got[1].0.contains("continue="),
            "{got:?}"
        );
    }
    let mark = proxy.mark();
    let whole = show("0");
    for resource in ["deployments", "pods", "statefulsets", "configmaps"] {
        let got = lists(&proxy, mark, &ns, resource);
        assert_eq!(got.len(), 1, "{resource}: {got:#?}");
        assert!(!got[0].0.contains("limit="), "{got:?}");
    }
    assert_eq!(paged, whole, "the same answer, paged or not");
    let v: Value = serde_json::from_str(&paged).expect("json");
    let text = v.to_string();
    for tag in [TAG, NEW_TAG] {
        assert!(
            text.contains(&bed.seeded_digest(REPO, tag)),
            "both builds the pods run (the third pod is on page 2): {text}"
        );
    }
    assert!(text.contains("\"mixed\""), "{text}");
}

/// A continue token that expired between pages (410 Gone, once) starts that list over from the
/// first page: the command succeeds with the full answer and says so. A token that keeps
/// expiring gives up after two restarts (three passes), with an error naming the list.
#[test]
fn an_expired_continue_token_restarts_the_list_a_bounded_number_of_times() {
    let Some(bed) = Bed::get() else { return };
    let (ns, rel) = release_with_pods(&bed, "gone410");
    let expired = |times: Option<u32>| {
        let mut r = json!({"method": "GET", "path": format!("/namespaces/{}/pods\\?.*continue=", &*ns),
            "status": 410, "k8s": true, "reason": "Expired",
            "body": "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."});
        if let Some(t) = times {
            r["times"] = json!(t);
        }
        json!([r])
    };
    let proxy = Proxy::apiserver(&bed.dir, &bed.api, expired(Some(1)));
    let args = ["show", &rel, "-n", &ns, "-o", "json", "--chunk-size", "2"];
    let out = run_via(&bed, &proxy, &args);
    out.assert_code(0);
    assert!(
        out.stderr
            .contains("the list of pods expired between pages (410 Gone"),
        "{}",
        out.stderr
    );
    let got = lists(&proxy, 0, &ns, "pods");
    let statuses: Vec<&str> = got.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(statuses, ["200", "410", "200", "200"], "{got:#?}");
    assert!(
        !got[2].0.contains("continue="),
        "restarted from page 1: {got:?}"
    );
    let text = out.stdout;
    for tag in [TAG, NEW_TAG] {
        assert!(text.contains(&bed.seeded_digest(REPO, tag)), "{text}");
    }

    proxy.set_rules(expired(None));
    let mark = proxy.mark();
    let out = run_via(&bed, &proxy, &args);
    out.assert_code(2);
    assert!(
        out.stderr.contains("410") && out.stderr.contains("list pods"),
        "{}",
        out.stderr
    );
    let got = lists(&proxy, mark, &ns, "pods");
    let statuses: Vec<&str> = got.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        statuses,
        ["200", "410", "200", "410", "200", "410"],
        "three passes, then the error: {got:#?}"
    );
}

/// Every request asks for gzip, and the API server compresses a large list (it does above
/// 128 KiB): the ConfigMaps list here carries a ~300 KB ConfigMap and crosses the wire as a
/// fraction of that.
#[test]
fn responses_are_gzip_compressed() {
    let Some(bed) = Bed::get() else { return };
    let ns = bed.namespace("gzip");
    let rel = "gzip-rel";
    let image = format!("{}/{REPO}:{TAG}", bed.reg_token);
    bed.apply(&airflow_release_yaml(&ns, rel, &image, "Deployment"));
    let big = "airflow log line that compresses well\n".repeat(8000);
    // `create`, not `apply`: apply would copy it into an annotation, which may not be that large.
    let o = bed.kubectl_stdin(
        &["create", "-f", "-"],
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "gzip-rel-big", "namespace": &*ns,
                "labels": {"tier": "airflow", "release": rel, "component": "big"}},
            "data": {"big.txt": big}})
        .to_string(),
    );
    assert!(o.ok(), "{}", o.stderr);
    let proxy = Proxy::apiserver(&bed.dir, &bed.api, json!([]));
    run_via(&bed, &proxy, &["show", rel, "-n", &ns, "-o", "json"]).assert_code(0);
    let requests = proxy.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert!(
            r["accept_encoding"]
                .as_str()
                .is_some_and(|a| a.contains("gzip")),
            "every request asks for gzip: {r}"
        );
    }
    let cms: Vec<&Value> = requests
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.contains(&format!("/namespaces/{}/configmaps?", &*ns)))
        })
        .collect();
    assert_eq!(cms.len(), 1, "{cms:#?}");
    assert_eq!(cms[0]["content_encoding"], "gzip", "{:#?}", cms[0]);
    let bytes = cms[0]["bytes"].as_u64().expect("bytes");
    assert!(
        bytes < big.len() as u64 / 10,
        "{bytes} bytes on the wire for {} of data",
        big.len()
    );
}

/// Three releases pinned in parallel; the middle one's last write is refused (409): it alone is
/// rolled back, the other two are pinned; the report says per release what happened (stderr,
/// and `releases` in the JSON), and the exit is 2. The first release's first write is held
/// until the third release is wholly written: the releases really go at once.
#[test]
fn releases_are_written_in_parallel_and_one_failing_rolls_back_alone() {
    let Some(bed) = Bed::get() else { return };
    let image = format!("{}/{REPO}:{TAG}", bed.reg_token);
    let (nss, rels) = tag_only_releases(&bed, &["par-a", "par-b", "par-c"]);
    let before: Vec<_> = nss
        .iter()
        .map(|ns| object_states(|a| bed.get_json(a), ns, REPO))
        .collect();
    let proxy = Proxy::apiserver(&bed.dir, &bed.api, json!([]));
    let go = proxy.path("go");
    let (a, b, c) = (&rels[0], &rels[1], &rels[2]);
    proxy.set_rules(json!([
        {"method": "PATCH", "path": format!("/namespaces/{}/deployments/{a}-webserver", &*nss[0]),
         "times": 1, "hold_until": go, "hold_max": 120},
        {"method": "PATCH", "path": format!("/namespaces/{}/configmaps/{b}-config", &*nss[1]),
         "times": 1, "status": 409, "k8s": true, "reason": "Conflict",
         "body": format!("Operation cannot be fulfilled on configmaps \"{b}-config\": the object has been modified; please apply your changes to the latest version and try again")},
    ]));
    let kubeconfig = proxy.kubeconfig(&bed.kubeconfig);
    let child = bed
        .cmd()
        .args(["pin", a, b, c, "--yes", "-o", "json"])
        .env("KUBECONFIG", &kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn pin");
    // While the first release's first write is held, the third release is written in full.
    let cm_c = format!("/namespaces/{}/configmaps/{c}-config", &*nss[2]);
    proxy.wait_for(90, "the third release's last write", |r| {
        r["method"] == "PATCH" && r["path"].as_str().is_some_and(|p| p.contains(&cm_c))
    });
    std::fs::write(&go, "").expect("let the held write go");
    let out: Out = child.wait_with_output().expect("pin output").into();
    out.assert_code(2);
    let pinned = format!("{image}@{}", bed.seeded_digest(REPO, TAG));
    for i in [0, 2] {
        let states = object_states(|a| bed.get_json(a), &nss[i], REPO);
        assert_eq!(states.len(), 3, "{states:?}");
        for (obj, (imgs, annotated)) in &states {
            assert!(imgs.iter().all(|x| *x == pinned), "{obj}: {imgs:?}");
            assert!(annotated, "{obj}");
        }
    }
    assert_eq!(
        object_states(|a| bed.get_json(a), &nss[1], REPO),
        before[1],
        "the failed release is as before, records included"
    );
    let report: Value = serde_json::from_str(&out.stdout).expect("json report");
    let (sts, web) = (
        format!("statefulset/{b}-scheduler"),
        format!("deployment/{b}-webserver"),
    );
    let failed = format!("configmap/{b}-config changed since the plan was made (Operation cannot be fulfilled on configmaps \"{b}-config\": the object has been modified; please apply your changes to the latest version and try again); rolled back: {sts}, {web}");
    assert_eq!(
        report["releases"],
        json!([
            {"namespace": &*nss[0], "release": a, "result": "applied"},
            {"namespace": &*nss[1], "release": b, "result": "failed", "error": failed},
            {"namespace": &*nss[2], "release": c, "result": "applied"},
        ])
    );
    for (i, rel) in [(0, a), (2, c)] {
        let line = format!("release {rel} ({}): 3 object(s) pinned", &*nss[i]);
        assert!(out.stderr.contains(&line), "{line:?} in {}", out.stderr);
    }
    let error = format!(
        "error: release {b} in namespace {}: {failed}; other releases: 2 pinned",
        &*nss[1]
    );
    assert!(out.stderr.contains(&error), "{error:?} in {}", out.stderr);
}

/// The access reviews (one SelfSubjectAccessReview per kind) run at once: while
/// the first is held at the proxy, the others are answered. A server dry run, so nothing is
/// stored; it writes every object of both releases with dryRun=All and exits 0.
#[test]
fn access_reviews_run_concurrently() {
    let Some(bed) = Bed::get() else { return };
    // The namespaces stay bound: dropping one deletes it.
    let (_namespaces, rels) = tag_only_releases(&bed, &["ssar-a", "ssar-b"]);
    let proxy = Proxy::apiserver(&bed.dir, &bed.api, json!([]));
    let go = proxy.path("go");
    proxy.set_rules(
        json!([{"method": "POST", "path": "/selfsubjectaccessreviews",
        "times": 1, "hold_until": go, "hold_max": 120}]),
    );
    let kubeconfig = proxy.kubeconfig(&bed.kubeconfig);
    let child = bed
        .cmd()
        .args(["pin", &rels[0], &rels[1], "--yes", "--dry-run=server"])
        .env("KUBECONFIG", &kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn pin");
    // Log lines are written when a request is answered: the held one is not among them.
    proxy.wait_for(
        90,
        "another access review answered while the first is held",
        review,
    );
    std::fs::write(&go, "").expect("let the held review go");
    let out: Out = child.wait_with_output().expect("pin output").into();
    out.assert_code(0);
    let reviews: Vec<Value> = proxy.requests().into_iter().filter(review).collect();
    // Three kinds (Deployments, StatefulSets, ConfigMaps), each patched in two namespaces: one
    // review each for every namespace at once, which the admin passes, so none per namespace.
    assert_eq!(reviews.len(), 3, "{reviews:#?}");
    assert_eq!(
        reviews.iter().filter(|r| !r["rule"].is_null()).count(),
        1,
        "{reviews:#?}"
    );
}

fn review(r: &Value) -> bool {
    r["method"] == "POST"
        && r["path"]
            .as_str()
            .is_some_and(|p| p.contains("/selfsubjectaccessreviews"))
}

/// The requests a pin and an unpin of three releases named without `-n` make, per release: one
/// pod list in the release's namespace (never a pod list over all namespaces, which makes the
/// API server read every pod of the cluster), one PATCH per object that changes and nothing
/// else there (no read-back, no GET per object); and for the run, one access review per kind,
/// asked for every namespace at once.
#[test]
fn requests_per_release_of_a_pin_and_an_unpin_anywhere() {
    let Some(bed) = Bed::get() else { return };
    let (nss, rels) = tag_only_releases(&bed, &["req-a", "req-b", "req-c"]);
    let proxy = Proxy::apiserver(&bed.dir, &bed.api, json!([]));
    for verb in ["pin", "unpin"] {
        let mark = proxy.mark();
        let mut args = vec![verb, "--yes"];
        args.extend(rels.iter().map(String::as_str));
        run_via(&bed, &proxy, &args).assert_code(0);
        let requests: Vec<Value> = proxy.requests().into_iter().skip(mark).collect();
        let all_pods: Vec<&Value> = requests
            .iter()
            .filter(|r| {
                r["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("/api/v1/pods"))
            })
            .collect();
        assert!(all_pods.is_empty(), "{verb}: {all_pods:#?}");
        for ns in &nss {
            let inside = format!("/namespaces/{}/", &**ns);
            let of_release: Vec<(String, String)> = requests
                .iter()
                .filter(|r| r["path"].as_str().is_some_and(|p| p.contains(&inside)))
                .map(|r| {
                    let path = r["path"].as_str().unwrap_or("");
                    let (path, _) = path.split_once('?').unwrap_or((path, ""));
                    let tail = path.rsplit('/').next().unwrap_or("");
                    (
                        r["method"].as_str().unwrap_or("").to_string(),
                        tail.to_string(),
                    )
                })
                .collect();
            let rel = format!("{}-r", &**ns);
            let mut got = of_release.clone();
            got.sort();
            assert_eq!(
                got,
                [
                    ("GET".to_string(), "pods".to_string()),
                    ("PATCH".to_string(), format!("{rel}-config")),
                    ("PATCH".to_string(), format!("{rel}-scheduler")),
                    ("PATCH".to_string(), format!("{rel}-webserver")),
                ],
                "{verb} {rel}: {of_release:#?}"
            );
        }
        let reviews = requests.iter().filter(|r| review(r)).count();
        assert_eq!(reviews, 3, "{verb}: {requests:#?}");
    }
}

/// A user who may patch only in some namespaces (a Role in each) is denied the review for every
/// namespace at once; then each namespace is asked: the pin of releases in its namespaces goes
/// ahead (3 reviews for every namespace + 3 kinds x 2 namespaces), and a release in a namespace
/// without the Role stops the run before anything is written, naming that namespace.
#[test]
fn access_reviews_fall_back_to_each_namespace_when_not_allowed_everywhere() {
    let Some(bed) = Bed::get() else { return };
    let (nss, rels) = tag_only_releases(&bed, &["nsrbac-a", "nsrbac-b", "nsrbac-c"]);
    // Reads everywhere (a ClusterRole bound cluster-wide); patch only in the first two namespaces.
    let user = format!("{}-writer", &*nss[0]);
    let reader = format!("{}-reader", &*nss[0]);
    bed.apply(&format!(
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {reader}}}
rules:
  - apiGroups: ["", apps, batch]
    resources: [pods, configmaps, deployments, statefulsets, cronjobs, namespaces]
    verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {reader}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {reader}}}
subjects: [{{kind: User, name: {user}, apiGroup: rbac.authorization.k8s.io}}]
"#
    ));
    for ns in &nss[..2] {
        bed.apply(&format!(
            r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: patcher, namespace: {ns}}}
rules:
  - apiGroups: ["", apps]
    resources: [configmaps, deployments, statefulsets]
    verbs: [patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: patcher, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: patcher}}
subjects: [{{kind: User, name: {user}, apiGroup: rbac.authorization.k8s.io}}]
"#,
            ns = &**ns
        ));
    }
    let before = object_states(|a| bed.get_json(a), &nss[2], REPO);
    let proxy = Proxy::apiserver(&bed.dir, &bed.api, json!([]));
    let out = run_via(
        &bed,
        &proxy,
        &["pin", &rels[0], &rels[2], "--yes", "--as", &user],
    );
    out.assert_code(2);
    assert!(
        out.stderr.contains(&format!(
            "forbidden: cannot patch deployments.apps in namespace \"{}\"; nothing was changed",
            &*nss[2]
        )),
        "{}",
        out.stderr
    );
    assert_eq!(proxy.count("PATCH", "/"), 0, "nothing written");
    assert_eq!(object_states(|a| bed.get_json(a), &nss[2], REPO), before);

    let mark = proxy.mark();
    let out = run_via(
        &bed,
        &proxy,
        &["pin", &rels[0], &rels[1], "--yes", "--as", &user],
    );
    out.assert_code(0);
    let requests: Vec<Value> = proxy.requests().into_iter().skip(mark).collect();
    assert_eq!(
        requests.iter().filter(|r| review(r)).count(),
        3 + 3 * 2,
        "{requests:#?}"
    );
    assert_eq!(
        requests.iter().filter(|r| r["method"] == "PATCH").count(),
        6,
        "{requests:#?}"
    );
}
