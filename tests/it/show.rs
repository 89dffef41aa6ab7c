//! `show` against the fixture platform of the bed.
use crate::support;

use std::collections::BTreeSet;

use crate::support::Bed;

/// (workload, container) pairs the seeding says run the Runtime, per release.
fn expected_runtime(bed: &Bed, release: &str) -> BTreeSet<(String, String)> {
    let rel = &bed.seed["platform"]["releases"][release];
    let mut out = BTreeSet::new();
    for key in ["workloads", "cronJobs"] {
        for w in rel[key].as_array().into_iter().flatten() {
            let name = format!(
                "{}/{}",
                w["kind"].as_str().unwrap().to_lowercase(),
                w["name"].as_str().unwrap()
            );
            for c in w["runtimeContainers"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(w["runtimeInitContainers"].as_array().into_iter().flatten())
            {
                out.insert((name.clone(), c.as_str().unwrap().to_string()));
            }
        }
    }
    out
}

fn show_release(bed: &Bed, release: &str) -> Vec<serde_json::Value> {
    let out = bed.run(&["show", release, "-o", "json"]);
    out.assert_code(0);
    out.json()["items"].as_array().unwrap().clone()
}

#[test]
fn lists_every_runtime_container_and_nothing_else() {
    let Some(bed) = Bed::get() else { return };
    for release in [
        "quasaric-sun-1234",
        "eccentric-star-5678",
        "galactic-nova-9012",
    ] {
        let items = show_release(&bed, release);
        let got: BTreeSet<(String, String)> = items
            .iter()
            .filter(|i| !i["workload"].as_str().unwrap().starts_with("configmap/"))
            .map(|i| {
                (
                    i["workload"].as_str().unwrap().to_string(),
                    i["container"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(got, expected_runtime(&bed, release), "{release}");
        // The KubernetesExecutor pod template is included.
        assert!(
            items
                .iter()
                .any(|i| i["workload"] == format!("configmap/{release}-config")
                    && i["container"] == "base"),
            "{release}: pod template missing"
        );
        // statsd, pgbouncer and other sidecars are not the Runtime.
        for i in &items {
            let image = i["image"].as_str().unwrap();
            assert!(
                image.contains("/astronomer/astro-runtime:") || image.contains("/runtime:"),
                "{image}"
            );
        }
        // Init containers and sidecars are there.
        assert!(items
            .iter()
            .any(|i| i["container"] == "wait-for-airflow-migrations" && i["role"] == "init"));
        assert!(items
            .iter()
            .any(|i| i["container"].as_str().unwrap().ends_with("-log-groomer")));
    }
}

/// How many rows `show` gives a release: one per Runtime container the seeding lists, plus one
/// per Runtime image line of its KubernetesExecutor pod template (read from the ConfigMap).
fn expected_rows(bed: &Bed, release: &str) -> usize {
    let rel = &bed.seed["platform"]["releases"][release];
    let cm = bed.get_json(&[
        "configmap",
        &format!("{release}-config"),
        "-n",
        rel["namespace"].as_str().unwrap(),
    ]);
    let runtime = rel["runtimeImage"].as_str().unwrap();
    let template = cm["data"]["pod_template_file.yaml"].as_str().unwrap();
    let in_template = template
        .lines()
        .filter(|l| {
            l.trim()
                .strip_prefix("image: ")
                .and_then(|rest| rest.split_whitespace().next())
                == Some(runtime)
        })
        .count();
    assert!(in_template > 0, "{release}: no Runtime in its pod template");
    expected_runtime(bed, release).len() + in_template
}

/// show's rows of a release, counted: a loop over the rows proves nothing if there are none.
#[track_caller]
fn counted_rows(bed: &Bed, release: &str) -> Vec<serde_json::Value> {
    let items = show_release(bed, release);
    assert_eq!(
        items.len(),
        expected_rows(bed, release),
        "{release}: every Runtime container and the pod template's: {items:#?}"
    );
    items
}

#[test]
fn status_per_fixture_state() {
    let Some(bed) = Bed::get() else { return };
    let rels = &bed.seed["platform"]["releases"];
    // tag-only: no spec digest; registry digest = the tag's seeded digest.
    let q = &rels["quasaric-sun-1234"];
    for i in counted_rows(&bed, "quasaric-sun-1234") {
        assert_eq!(i["status"], "tag-only", "{i}");
        assert_eq!(i["registryDigest"], q["currentDigest"]);
        assert!(i["specDigest"].is_null());
    }
    // pinned: spec = registry = running.
    let e = &rels["eccentric-star-5678"];
    for i in counted_rows(&bed, "eccentric-star-5678") {
        assert_eq!(i["status"], "pinned", "{i}");
        assert_eq!(i["specDigest"], e["currentDigest"]);
    }
    // drifted: pinned to the old digest of a re-pushed tag; the api-server pod runs the new one.
    let g = &rels["galactic-nova-9012"];
    for i in counted_rows(&bed, "galactic-nova-9012") {
        assert_eq!(i["specDigest"], g["oldDigest"]);
        assert_eq!(i["registryDigest"], g["currentDigest"]);
        let expected = if i["workload"] == "deployment/galactic-nova-9012-api-server" {
            "running-differs"
        } else {
            "drifted"
        };
        assert_eq!(i["status"], expected, "{i}");
    }
}

#[test]
fn check_exit_codes() {
    let Some(bed) = Bed::get() else { return };
    bed.run(&["show", "eccentric-star-5678", "--check"])
        .assert_code(0);
    let out = bed.run(&["show", "quasaric-sun-1234", "--check"]);
    out.assert_code(1);
    assert!(out.stderr.contains("check failed"), "{}", out.stderr);
    bed.run(&["show", "galactic-nova-9012", "--check", "-o", "json"])
        .assert_code(1);
    let out = bed.run(&["show", "no-such-release-0000", "--check"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("no-such-release-0000"),
        "{}",
        out.stderr
    );
}

#[test]
fn table_output_and_headers() {
    let Some(bed) = Bed::get() else { return };
    let out = bed.run(&["show", "-n", "astronomer-quasaric-sun-1234"]);
    out.assert_code(0);
    let table_rows = out.stdout.lines().count() - 1;
    assert_eq!(
        table_rows,
        expected_rows(&bed, "quasaric-sun-1234"),
        "{}",
        out.stdout
    );
    // kubectl's habit (issue 14): a short default table, NAMESPACE only with -A, the rest wide.
    let first = out.stdout.lines().next().unwrap();
    let headers: Vec<&str> = first
        .split("   ")
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    assert_eq!(
        headers,
        ["WORKLOAD", "CONTAINER", "TAG", "SPEC DIGEST", "STATUS"],
        "{first}"
    );
    let all = bed.run(&["show", "-A", "quasaric-sun-1234"]);
    all.assert_code(0);
    let first = all.stdout.lines().next().unwrap();
    assert!(
        first.starts_with("NAMESPACE ") && first.contains(" WORKLOAD "),
        "{first}"
    );
    assert!(all.stdout.contains("\nastronomer-quasaric-sun-1234 "));
    let wide = bed.run(&["show", "-n", "astronomer-quasaric-sun-1234", "-o", "wide"]);
    wide.assert_code(0);
    let first = wide.stdout.lines().next().unwrap();
    let headers: Vec<&str> = first
        .split("   ")
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    assert_eq!(
        headers,
        [
            "WORKLOAD",
            "CONTAINER",
            "TAG",
            "SPEC DIGEST",
            "STATUS",
            "RELEASE",
            "REGISTRY DIGEST",
            "RUNNING DIGEST",
            "IMAGE",
            "REGISTRY SOURCE"
        ],
        "wide appends columns, as kubectl: {first}"
    );
    let out = bed.run(&["show", "-n", "astronomer-quasaric-sun-1234", "--no-headers"]);
    out.assert_code(0);
    assert!(!out.stdout.contains("WORKLOAD"));
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), table_rows, "the same rows, without the header");
    for l in lines {
        assert!(l.contains("tag-only"), "{l}");
    }
    let out = bed.run(&["show", "-n", "astronomer-quasaric-sun-1234", "-o", "yaml"]);
    out.assert_code(0);
    assert!(out.stdout.contains("status: tag-only"), "{}", out.stdout);
    // --all-images brings in the rest: a row for every other container of the release's
    // workloads, beside the Runtime rows.
    let out = bed.run(&[
        "show",
        "-n",
        "astronomer-quasaric-sun-1234",
        "--all-images",
        "-o",
        "json",
    ]);
    // Exit 1: the other images' tags (pgbouncer, statsd, ...) are not in the bed's registries, so
    // their rows are unresolved and the answer is incomplete (README's exit codes).
    out.assert_code(1);
    let items = out.json()["items"].as_array().unwrap().clone();
    let runtime = items.iter().filter(|i| i["status"] == "tag-only").count();
    assert_eq!(runtime, table_rows, "the Runtime rows are all still there");
    // The fixture's other containers, each once (tests/fixtures/platform/20-airflow-quasaric-sun-1234.yaml: pgbouncer with its
    // exporter, statsd, the webserver's auth proxy).
    let mut others: Vec<(&str, &str)> = items
        .iter()
        .filter(|i| i["status"] != "tag-only")
        .map(|i| {
            (
                i["workload"].as_str().unwrap(),
                i["container"].as_str().unwrap(),
            )
        })
        .collect();
    others.sort();
    assert_eq!(
        others,
        [
            ("deployment/quasaric-sun-1234-pgbouncer", "metrics-exporter"),
            ("deployment/quasaric-sun-1234-pgbouncer", "pgbouncer"),
            ("deployment/quasaric-sun-1234-statsd", "statsd"),
            ("deployment/quasaric-sun-1234-webserver", "auth-proxy"),
        ],
        "{items:#?}"
    );
    assert!(
        items
            .iter()
            .any(|i| i["image"].as_str().unwrap().contains("statsd-exporter")),
        "{items:#?}"
    );
}

#[test]
fn errors_name_what_failed() {
    let Some(bed) = Bed::get() else { return };
    let out = bed.run(&["show", "-A", "--context", "testbed-norights"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("forbidden") && out.stderr.contains("list"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint:"), "{}", out.stderr);
    let out = bed.run(&["show", "-n", "no-such-namespace-zz"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("no-such-namespace-zz") && out.stderr.contains("not found"),
        "{}",
        out.stderr
    );
    let out = bed.run_with(&["show", "-A", "--request-timeout", "2s"], |c| {
        let dir = tempfile::tempdir().unwrap().keep();
        let kc = dir.join("kc");
        std::fs::write(&kc, "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: x\n").unwrap();
        c.env("KUBECONFIG", kc);
    });
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("cannot reach the API server at https://127.0.0.1:1"),
        "{}",
        out.stderr
    );
    // A client certificate file the kubeconfig names but that is not there: named once,
    // unquoted (issue 23: kube says '"/nope/client.crt"'), nothing sent.
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kc");
    std::fs::write(&kc, format!("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://{}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    client-certificate: /nope/client.crt\n    client-key: /nope/client.key\n", bed.api)).unwrap();
    let out = bed.run_with(&["show", "-A"], |c| {
        c.env("KUBECONFIG", &kc);
    });
    out.assert_code(2);
    assert!(
        out.stderr.contains(
            "cannot read the client certificate file /nope/client.crt: No such file or directory"
        ),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("\"/nope"), "{}", out.stderr);
}

#[test]
fn one_registry_request_per_unique_reference_across_workloads() {
    let Some(bed) = Bed::get() else { return };
    let ns = bed.namespace("show-count");
    let repo = format!("astro-sha-tests/{ns}/astro-runtime");
    let digest = bed.push(&format!("{}/{repo}:2.0.0", bed.reg_plain), "oci-index", "x");
    let image = format!("{}/{repo}:2.0.0", bed.reg_token);
    bed.apply(&support::airflow_release_yaml(
        &ns,
        "count-rel",
        &image,
        "StatefulSet",
    ));
    let out = bed.run(&["show", "-n", &ns, "-o", "json"]);
    out.assert_code(0);
    let items = out.json()["items"].as_array().unwrap().clone();
    assert_eq!(
        items.len(),
        5,
        "init, scheduler, groomer, webserver, template"
    );
    assert!(items.iter().all(|i| i["registryDigest"] == digest.as_str()));
    let requests = bed
        .registry_log("token")
        .lines()
        .filter(|l| {
            l.contains("\"msg\":\"response completed")
                && l.contains(&format!("/v2/{repo}/manifests/"))
        })
        .count();
    assert_eq!(requests, 1, "five containers, one image, one request");
}

#[test]
fn workload_pull_secrets_authenticate_to_the_registry() {
    let Some(bed) = Bed::get() else { return };
    let ns = bed.namespace("pullsecret");
    let image = format!("{}/astronomer/astro-runtime:12.1.0", bed.reg_basic);
    let mut yaml = support::airflow_release_yaml(&ns, "ps-rel", &image, "Deployment");
    yaml = yaml.replace(
        "    spec:\n      initContainers:",
        "    spec:\n      imagePullSecrets:\n        - name: regcred\n      initContainers:",
    );
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode("testuser:testpassword");
    let cfg = format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, bed.reg_basic);
    let secret = base64::engine::general_purpose::STANDARD.encode(cfg);
    yaml.push_str(&format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: regcred\n  namespace: {ns}\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {secret}\n"
    ));
    bed.apply(&yaml);
    let out = bed.run(&["show", "-n", &ns, "-o", "json"]);
    // exit 1: the webserver names no pull secret, so its tag stays unresolved (401)
    out.assert_code(1);
    let items = out.json()["items"].as_array().unwrap().clone();
    let scheduler: Vec<_> = items
        .iter()
        .filter(|i| i["workload"] == "deployment/ps-rel-scheduler")
        .collect();
    assert_eq!(scheduler.len(), 3, "init, scheduler, groomer: {items:#?}");
    for i in scheduler {
        assert_eq!(
            i["registryDigest"],
            bed.seeded_digest("astronomer/astro-runtime", "12.1.0"),
            "resolved with the pull secret: {i}"
        );
    }
    assert!(!out.stdout.contains("testpassword") && !out.stderr.contains("testpassword"));
    // Without the pull secret the basic-auth registry answers 401 and the digest stays empty.
    let bare = bed.namespace("nopullsecret");
    bed.apply(&support::airflow_release_yaml(
        &bare,
        "nops-rel",
        &image,
        "Deployment",
    ));
    let out = bed.run(&["show", "-n", &bare, "-o", "json"]);
    out.assert_code(1);
    let items = out.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 5, "{items:#?}");
    for i in &items {
        assert_eq!(i["status"], "unresolved: unauthorized", "{i}");
        assert!(i["registryDigest"].is_null(), "{i}");
    }
}

#[test]
fn mirrors_resolve_public_names_against_the_mirror_and_show_both() {
    let Some(bed) = Bed::get() else { return };
    let mirror = format!("quay.io={}", bed.reg_token);
    let out = bed.run(&[
        "resolve",
        "quay.io/astronomer/astro-runtime:12.1.0",
        "--registry-mirror",
        &mirror,
        "-o",
        "json",
    ]);
    out.assert_code(0);
    let item = &out.json()["items"][0];
    assert_eq!(
        item["digest"],
        bed.seeded_digest("astronomer/astro-runtime", "12.1.0")
    );
    assert_eq!(item["mirrored"], true);
    assert_eq!(item["image"], "quay.io/astronomer/astro-runtime:12.1.0");
    assert_eq!(
        item["source"],
        format!("{}/astronomer/astro-runtime:12.1.0", bed.reg_token)
    );
    let wide = bed.run(&[
        "resolve",
        "quay.io/astronomer/astro-runtime:12.1.0",
        "--registry-mirror",
        &mirror,
        "-o",
        "wide",
    ]);
    assert!(
        wide.stdout
            .contains("quay.io/astronomer/astro-runtime:12.1.0")
            && wide
                .stdout
                .contains(&format!("{}/astronomer", bed.reg_token)),
        "{}",
        wide.stdout
    );
}

#[test]
fn kubeconfig_list_and_context_flags_are_honoured() {
    let Some(bed) = Bed::get() else { return };
    // KUBECONFIG with two files: an unrelated one first, then the bed's; --context picks the bed.
    let dir = tempfile::tempdir().unwrap();
    let other = support::write_file(dir.path(), "other", "apiVersion: v1\nkind: Config\nclusters:\n- name: far\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: far\n  context:\n    cluster: far\n    user: far\ncurrent-context: far\nusers:\n- name: far\n  user:\n    token: x\n");
    let list = std::env::join_paths([other.as_path(), bed.kubeconfig.as_path()]).unwrap();
    let out = bed.run_with(
        &[
            "show",
            "eccentric-star-5678",
            "--context",
            "testbed-admin",
            "--check",
        ],
        |c| {
            c.env("KUBECONFIG", &list);
        },
    );
    out.assert_code(0);
    // --kubeconfig overrides KUBECONFIG.
    let out = bed.run_with(
        &[
            "show",
            "eccentric-star-5678",
            "--kubeconfig",
            bed.kubeconfig.to_str().unwrap(),
            "--check",
        ],
        |c| {
            c.env("KUBECONFIG", &other);
        },
    );
    out.assert_code(0);
    // An unknown context is a clear error.
    let out = bed.run(&["show", "-A", "--context", "no-such-context"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("kubeconfig: ")
            && out.stderr.contains("no-such-context")
            && out.stderr.contains("kubectl config get-contexts"),
        "{}",
        out.stderr
    );
}

#[test]
fn pods_running_different_digests_show_as_mixed() {
    let Some(bed) = Bed::get() else { return };
    let ns = bed.namespace("mixed");
    let digest = bed.seeded_digest("astronomer/astro-runtime", "12.1.0");
    let other = bed.seeded_digest("astronomer/astro-runtime", "12.2.0");
    let image = format!("{}/astronomer/astro-runtime:12.1.0@{digest}", bed.reg_token);
    bed.apply(&support::airflow_release_yaml(
        &ns,
        "mx-rel",
        &image,
        "Deployment",
    ));
    for (pod, d) in [("a", &digest), ("b", &other)] {
        bed.apply(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-{pod}\n  namespace: {ns}\n  labels: {{tier: airflow, component: webserver, release: mx-rel}}\nspec:\n  automountServiceAccountToken: false\n  containers:\n  - name: webserver\n    image: {image}\n"
        ));
        let status = format!(
            r#"{{"status":{{"phase":"Running","containerStatuses":[{{"name":"webserver","image":"{image}","imageID":"{}/astronomer/astro-runtime@{d}","ready":true,"restartCount":0,"state":{{"running":{{}}}}}}]}}}}"#,
            bed.reg_token
        );
        let o = bed.kubectl(&[
            "patch",
            "pod",
            &format!("web-{pod}"),
            "-n",
            &ns,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status,
        ]);
        assert!(o.ok(), "{}", o.stderr);
    }
    let out = bed.run(&["show", "-n", &ns, "-o", "json"]);
    let items = out.json()["items"].as_array().unwrap().clone();
    let web = items
        .iter()
        .find(|i| i["workload"] == "deployment/mx-rel-webserver")
        .unwrap();
    assert_eq!(web["running"]["state"], "mixed", "{web}");
    assert_eq!(web["status"], "running-differs");
    // The default table says running-differs; wide says why (issue 14: digests go to wide).
    let table = bed.run(&["show", "-n", &ns, "-o", "wide"]);
    assert!(
        table.stdout.lines().any(|l| l.contains("mx-rel-webserver")
            && l.contains("running-differs")
            && l.contains("mixed")),
        "{}",
        table.stdout
    );
}
