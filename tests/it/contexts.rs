//! `status` and `show` across kubeconfig contexts (`--contexts`, `--all-contexts`), against the
//! bed serving several contexts at once: a kubeconfig of the bed's cluster under two names
//! (`east-a`, `east-b`, the admin), a second user (`west-limited`: limited4, given read access to
//! the test's namespaces only), a user with no rights (`forbidden`), and a context whose server
//! accepts connections and never answers (`silent`: a listener of this test).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::enable_status::{enabled_platform, AirflowNamespaces, REG};
use crate::support::{self, Bed};

/// An API server that accepts connections and never says a byte; counts the connections.
struct Silent {
    addr: String,
    accepted: Arc<AtomicUsize>,
}

fn silent_server() -> Silent {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a silent listener");
    let addr = l.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut held = vec![];
        for s in l.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(s); // never read, never answered, never closed while the test runs
        }
    });
    Silent { addr, accepted }
}

/// The bed's kubeconfig with the fleet's contexts added (the bed's own stay, in front).
fn fleet_kubeconfig(bed: &Bed, dir: &Path, silent: &Silent) -> PathBuf {
    let text = std::fs::read_to_string(&bed.kubeconfig).expect("read the bed's kubeconfig");
    let mut kc: Value = serde_yaml_ng::from_str(&text).expect("kubeconfig YAML");
    let ca = kc["clusters"][0]["cluster"]["certificate-authority-data"].clone();
    kc["clusters"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "silent", "cluster":
        {"server": format!("https://{}", silent.addr), "certificate-authority-data": ca}}));
    let ctx = |name: &str, cluster: &str, user: &str| json!({"name": name, "context": {"cluster": cluster, "user": user, "namespace": "default"}});
    let contexts = kc["contexts"].as_array_mut().unwrap();
    contexts.push(ctx("east-a", "testbed", "admin"));
    contexts.push(ctx("east-b", "testbed", "admin"));
    contexts.push(ctx("west-limited", "testbed", "limited4"));
    contexts.push(ctx("forbidden", "testbed", "norights"));
    contexts.push(ctx("silent", "silent", "admin"));
    let path = dir.join("fleet-kubeconfig");
    std::fs::write(&path, serde_yaml_ng::to_string(&kc).unwrap()).unwrap();
    path
}

/// Lets limited4 read what status reads in `namespaces` (Secrets included), nothing else.
fn grant_reader(bed: &Bed, namespaces: &[&str]) {
    for ns in namespaces {
        bed.apply(&format!(
            r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: fleet-reader, namespace: {ns}}}
rules:
- apiGroups: [""]
  resources: [configmaps, pods, secrets, serviceaccounts]
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
metadata: {{name: fleet-reader-limited4, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: fleet-reader}}
subjects:
- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: limited4}}
"#
        ));
    }
}

fn run(bed: &Bed, kc: &Path, args: &[&str]) -> support::Out {
    bed.run_with(args, |c| {
        c.env("KUBECONFIG", kc);
    })
}

/// The item of `context` in `status -o json` across contexts.
fn item<'a>(v: &'a Value, context: &str) -> &'a Value {
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["context"] == context)
        .unwrap_or_else(|| panic!("no item for {context} in {v}"))
}

/// One platform in order, read through two names of the bed, a second user, a user with no
/// rights and a server that never answers: a glob selects, each context is its own row, the
/// silent one ends as "unreachable" after the request timeout while the others complete, the
/// forbidden one says so, JSON carries the context on every item, and the exit code is the worst.
#[test]
fn status_across_contexts_one_row_per_platform_and_the_worst_exit_code() {
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
    // Its pods run the pin (pods/status; no kubelet on the bed): in order, not unknown.
    let sched = ["scheduler", "scheduler-log-groomer"];
    crate::exit_codes::running(&bed, &air, "pinned-rel", "scheduler", &sched, &cur);
    crate::exit_codes::running(&bed, &air, "pinned-rel", "webserver", &["webserver"], &cur);
    grant_reader(&bed, &[&plat.ns, &air]);
    let silent = silent_server();
    let dir = tempfile::tempdir().unwrap();
    let kc = fleet_kubeconfig(&bed, dir.path(), &silent);
    let scope = ["--platform-namespace", &plat.ns, "-n", &air];
    let status = |extra: &[&str]| {
        let mut a = vec!["status"];
        a.extend_from_slice(&scope);
        a.extend_from_slice(extra);
        run(&bed, &kc, &a)
    };

    // Every platform in order: a glob and a name, --check passes.
    let o = status(&["--contexts", "east-*,west-limited", "--check"]);
    o.assert_code(0);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(lines[0].starts_with("CONTEXT "), "{}", o.stdout);
    for (i, c) in ["east-a", "east-b", "west-limited"].iter().enumerate() {
        let row: Vec<&str> = lines[i + 1].split_whitespace().collect();
        assert_eq!(
            row,
            [
                *c,
                plat.ns.as_str(),
                "0.37.4",
                "on",
                "astro-runtime-base-images",
                "1",
                "0",
                "0",
                "ok"
            ],
            "{}",
            o.stdout
        );
        assert!(
            o.stdout.contains(&format!("=== context {c} ===")),
            "{}",
            o.stdout
        );
    }
    assert!(
        !o.stdout.contains("=== context testbed-admin"),
        "{}",
        o.stdout
    );

    // A silent server and a user with no rights: their own rows, the others complete.
    let o = status(&[
        "--contexts",
        "east-a,silent,forbidden,west-limited",
        "--request-timeout",
        "3s",
        "-o",
        "json",
    ]);
    o.assert_code(2);
    assert!(
        silent.accepted.load(Ordering::SeqCst) >= 1,
        "the silent server was asked"
    );
    let v = o.json();
    let contexts: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["context"].as_str().unwrap())
        .collect();
    assert_eq!(
        contexts,
        ["east-a", "west-limited", "forbidden", "silent"],
        "the kubeconfig's order, every item with its context"
    );
    for c in ["east-a", "west-limited"] {
        let i = item(&v, c);
        assert_eq!(i["state"], "ok", "{i}");
        assert_eq!(i["ok"], true, "{i}");
        assert_eq!(i["deployments"]["byState"]["pinned"], 1, "{i}");
        assert_eq!(i["platform"]["namespace"], plat.ns.as_str(), "{i}");
    }
    let s = item(&v, "silent");
    assert_eq!(s["state"], "unreachable", "{s}");
    assert!(
        s["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("the API server at https://{}/", silent.addr)),
        "{s}"
    );
    let f = item(&v, "forbidden");
    assert_eq!(f["state"], "forbidden", "{f}");
    assert!(f["reason"].as_str().unwrap().contains("(forbidden)"), "{f}");

    // The table: each of them a row with its state and reason.
    let o = status(&[
        "--contexts",
        "east-a,silent,forbidden",
        "--request-timeout",
        "3s",
    ]);
    o.assert_code(2);
    let row = |c: &str| {
        o.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{c} ")))
            .unwrap_or_else(|| panic!("no row for {c}:\n{}", o.stdout))
            .to_string()
    };
    assert!(row("silent").contains(" unreachable "), "{}", o.stdout);
    assert!(row("forbidden").contains(" forbidden "), "{}", o.stdout);
    assert!(row("east-a").contains(" ok"), "{}", o.stdout);

    // Not in order on one platform: --check says 1, without it 0.
    bed.apply(&support::airflow_release_yaml(
        &air,
        "tag-rel",
        &format!("{REG}/astronomer/astro-runtime:12.2.0"),
        "Deployment",
    ));
    let o = status(&["--contexts", "east-*", "--check"]);
    o.assert_code(1);
    assert!(
        o.stderr.contains("2 of 2 platforms are not in order"),
        "{}",
        o.stderr
    );
    status(&["--contexts", "east-*"]).assert_code(0);

    // No Houston where the platform is looked for: a no-platform row, 1 with --check.
    let o = run(
        &bed,
        &kc,
        &[
            "status",
            "--platform-namespace",
            &air,
            "-n",
            &air,
            "--contexts",
            "east-a,west-limited",
            "--check",
        ],
    );
    o.assert_code(1);
    for c in ["east-a", "west-limited"] {
        let row = o
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{c} ")))
            .unwrap_or_else(|| panic!("no row for {c}:\n{}", o.stdout));
        assert!(row.contains(" no-platform "), "{}", o.stdout);
    }
}

/// `show` across two names of one cluster: CONTEXT leads the table, every JSON item carries its
/// context, and the tag both contexts use is asked of the registry once (one resolver).
#[test]
fn show_across_contexts_asks_the_registry_once_per_tag() {
    let Some(bed) = Bed::get() else { return };
    let ns = bed.namespace("ctx-show");
    let repo = format!("astro-sha-tests/{}/astro-runtime", ns.name);
    let digest = bed.push(&format!("{}/{repo}:2.0.0", bed.reg_plain), "oci-index", "c");
    bed.apply(&support::airflow_release_yaml(
        &ns.name,
        "shared-rel",
        &format!("{}/{repo}:2.0.0", bed.reg_token),
        "StatefulSet",
    ));
    let silent = silent_server();
    let dir = tempfile::tempdir().unwrap();
    let kc = fleet_kubeconfig(&bed, dir.path(), &silent);
    let o = run(
        &bed,
        &kc,
        &[
            "show",
            "-n",
            &ns.name,
            "--contexts",
            "east-a,east-b",
            "-o",
            "json",
        ],
    );
    o.assert_code(0);
    let v = o.json();
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 10, "five containers in each context: {v}");
    for c in ["east-a", "east-b"] {
        assert_eq!(items.iter().filter(|i| i["context"] == c).count(), 5, "{v}");
    }
    assert!(items.iter().all(|i| i["registryDigest"] == digest.as_str()));
    assert_eq!(
        v["contexts"],
        json!([{"context": "east-a", "state": "not-in-order", "containers": 5, "pinned": 0},
               {"context": "east-b", "state": "not-in-order", "containers": 5, "pinned": 0}])
    );
    let requests = bed
        .registry_log("token")
        .lines()
        .filter(|l| {
            l.contains("\"msg\":\"response completed")
                && l.contains(&format!("/v2/{repo}/manifests/"))
        })
        .count();
    assert_eq!(requests, 1, "one tag on two platforms, one request");

    // The table: CONTEXT first, on every row; --check fails on tag-only containers.
    let o = run(
        &bed,
        &kc,
        &["show", "-n", &ns.name, "--contexts", "east-?", "--check"],
    );
    o.assert_code(1);
    let table: Vec<&str> = o
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("CONTEXT   WORKLOAD"))
        .collect();
    assert_eq!(table.len(), 11, "{}", o.stdout);
    assert_eq!(table.iter().filter(|l| l.starts_with("east-a ")).count(), 5);
    assert_eq!(table.iter().filter(|l| l.starts_with("east-b ")).count(), 5);
}

/// Without --check, a tag that could not be looked up in any context makes show across contexts
/// exit 1, as show on one context does (README's exit-code table: "1 ... a tag did not
/// resolve"); the line on stderr says how many containers and in which contexts.
#[test]
fn show_across_contexts_exits_1_when_a_tag_did_not_resolve() {
    let Some(bed) = Bed::get() else { return };
    let ns = bed.namespace("ctx-unres");
    // A tag the registry never had: unresolved (not found) on both platforms.
    let image = format!(
        "{}/astro-sha-tests/{}/astro-runtime:9.9.9-none",
        bed.reg_plain, ns.name
    );
    bed.apply(&support::airflow_release_yaml(
        &ns.name,
        "gone-rel",
        &image,
        "StatefulSet",
    ));
    let silent = silent_server();
    let dir = tempfile::tempdir().unwrap();
    let kc = fleet_kubeconfig(&bed, dir.path(), &silent);
    let o = run(
        &bed,
        &kc,
        &["show", "-n", &ns.name, "--contexts", "east-a,east-b"],
    );
    o.assert_code(1);
    assert!(
        o.stderr.contains(
            "10 of 10 Runtime containers in contexts east-a, east-b are unresolved: their tag could not be looked up (exit 1"
        ),
        "{}",
        o.stderr
    );
    // With the tag pushed, the same run exits 0 (tag-only is not a failure without --check).
    bed.push(&image, "oci-index", "u");
    let o = run(
        &bed,
        &kc,
        &["show", "-n", &ns.name, "--contexts", "east-a,east-b"],
    );
    o.assert_code(0);
    assert!(!o.stderr.contains("unresolved"), "{}", o.stderr);
}

/// A selection that names no context is refused before anything is asked, with the names there
/// are; --context and --contexts together are refused too.
#[test]
fn a_context_list_that_matches_nothing_is_refused() {
    let Some(bed) = Bed::get() else { return };
    let silent = silent_server();
    let dir = tempfile::tempdir().unwrap();
    let kc = fleet_kubeconfig(&bed, dir.path(), &silent);
    let o = run(&bed, &kc, &["status", "--contexts", "east-a,prod-*"]);
    o.assert_code(2);
    assert!(o.stdout.is_empty(), "{}", o.stdout);
    assert!(
        o.stderr
            .contains("no kubeconfig context matches \"prod-*\""),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("east-a, east-b"), "{}", o.stderr);
    let o = run(
        &bed,
        &kc,
        &["show", "--context", "east-a", "--contexts", "east-b"],
    );
    o.assert_code(2);
    assert!(
        o.stderr.contains("--context east-a names one context"),
        "{}",
        o.stderr
    );
    assert_eq!(silent.accepted.load(Ordering::SeqCst), 0);
}

/// `kubectl astro-sha status --contexts <TAB>` offers the kubeconfig's names and globs.
#[test]
fn context_names_complete() {
    let Some(bed) = Bed::get() else { return };
    let silent = silent_server();
    let dir = tempfile::tempdir().unwrap();
    let kc = fleet_kubeconfig(&bed, dir.path(), &silent);
    let o = run(&bed, &kc, &["__complete", "status", "--contexts", "east"]);
    o.assert_code(0);
    let values: Vec<&str> = o.stdout.lines().filter(|l| !l.starts_with(':')).collect();
    assert_eq!(values, ["east-a", "east-b", "east-*"], "{}", o.stdout);
    let o = run(&bed, &kc, &["__complete", "show", "--contexts", "east-a,w"]);
    let values: Vec<&str> = o.stdout.lines().filter(|l| !l.starts_with(':')).collect();
    assert_eq!(values, ["east-a,west-limited"], "{}", o.stdout);
    let o = run(&bed, &kc, &["__complete", "show", "--context", "for"]);
    let values: Vec<&str> = o.stdout.lines().filter(|l| !l.starts_with(':')).collect();
    assert_eq!(values, ["forbidden"], "{}", o.stdout);
}
