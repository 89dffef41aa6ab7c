//! Fault matrix, API server rows: the fault proxy in front of the bed's kube-apiserver (TLS
//! terminated and re-originated), and a private etcd + kube-apiserver for the rows that kill or
//! restart them. Every row asserts a clear error or a recovery, and the cluster state after it:
//! a release is either untouched or wholly pinned, or (API server gone mid-run) in a state a
//! rerun finishes.
use crate::support;

use std::path::PathBuf;

use crate::support::faults::{object_states, release_state, OwnCluster, Proxy};
use crate::support::{airflow_release_yaml, Bed, Out};
use serde_json::{json, Value};

const REPO: &str = "astronomer/astro-runtime";
const TAG: &str = "12.1.0";

/// A release on the shared bed, reached through an API proxy.
struct Api<'a> {
    bed: &'a Bed,
    ns: support::TestNamespace,
    release: String,
    image: String,
    proxy: Proxy,
    kubeconfig: PathBuf,
}

impl<'a> Api<'a> {
    /// The scheduler is a StatefulSet, so the release spans Deployment, StatefulSet, ConfigMap
    /// (applied in that order).
    fn new(bed: &'a Bed, prefix: &str, rules: Value) -> Api<'a> {
        let ns = bed.namespace(prefix);
        let release = format!("{prefix}-rel");
        let image = format!("{}/{REPO}:{TAG}", bed.reg_token);
        bed.apply(&airflow_release_yaml(&ns, &release, &image, "StatefulSet"));
        let proxy = Proxy::apiserver(&bed.dir, &bed.api, rules);
        let kubeconfig = proxy.kubeconfig(&bed.kubeconfig);
        Api {
            bed,
            ns,
            release,
            image,
            proxy,
            kubeconfig,
        }
    }

    fn run(&self, args: &[&str]) -> Out {
        self.bed.run_with(args, |c| {
            c.env("KUBECONFIG", &self.kubeconfig);
        })
    }

    fn show(&self) -> Out {
        self.run(&["show", &self.release, "-n", &self.ns, "-o", "json"])
    }

    fn pin(&self) -> Out {
        self.run(&["pin", &self.release, "-n", &self.ns, "--yes"])
    }

    fn state(&self) -> (Vec<String>, usize) {
        release_state(|a| self.bed.get_json(a), &self.ns, REPO)
    }

    #[track_caller]
    fn assert_untouched(&self) {
        let (imgs, annotated) = self.state();
        assert_eq!(imgs.len(), 5, "{imgs:?}");
        assert!(
            imgs.iter().all(|i| *i == self.image),
            "rolled back: {imgs:?}"
        );
        assert_eq!(annotated, 0, "no bookkeeping left behind");
    }

    #[track_caller]
    fn assert_pinned(&self) {
        let want = format!("{}@{}", self.image, self.bed.seeded_digest(REPO, TAG));
        let (imgs, annotated) = self.state();
        assert_eq!(imgs.len(), 5, "{imgs:?}");
        assert!(imgs.iter().all(|i| *i == want), "all pinned: {imgs:?}");
        assert_eq!(annotated, 3);
    }

    /// The objects of the release, by name: `deployment/REL-webserver`, `statefulset/REL-scheduler`,
    /// `configmap/REL-config`.
    fn obj(&self, kind: &str) -> String {
        let suffix = match kind {
            "deployment" => "webserver",
            "statefulset" => "scheduler",
            _ => "config",
        };
        format!("{kind}/{}-{suffix}", self.release)
    }

    /// The same object as the API path the PATCH goes to (`deployments/REL-webserver`).
    fn path(&self, kind: &str) -> String {
        let obj = self.obj(kind);
        let (_, name) = obj.split_once('/').expect("kind/name");
        format!("{kind}s/{name}")
    }

    /// A failed pin: exit 2, the message; the writes in the proxy's log (the earlier writes
    /// really happened before the fault, and were undone after it, in reverse order); the
    /// summary names each object's fate (`rolled back` / `left as it was`), and the read-back
    /// finds every object as it was, bookkeeping annotation included. Then with the fault gone
    /// the same pin completes.
    #[track_caller]
    fn assert_pin_fails_and_rolls_back(
        &self,
        message: &[&str],
        failing: (&str, &str),
        earlier: &[&str],
    ) {
        let mark = self.proxy.mark();
        let out = self.pin();
        out.assert_code(2);
        for m in message {
            assert!(out.stderr.contains(m), "missing {m:?} in:\n{}", out.stderr);
        }
        let order = ["deployment", "statefulset", "configmap"];
        let mut want: Vec<(String, String)> = earlier
            .iter()
            .map(|k| (self.path(k), "200".to_string()))
            .collect();
        want.push((self.path(failing.0), failing.1.to_string()));
        want.extend(
            earlier
                .iter()
                .rev()
                .map(|k| (self.path(k), "200".to_string())),
        );
        assert_eq!(
            self.proxy.patches_since(mark),
            want,
            "the earlier writes, the refused one, then the rollback in reverse"
        );
        let rolled_back: Vec<String> = earlier.iter().rev().map(|k| self.obj(k)).collect();
        let left: Vec<String> = order
            .iter()
            .skip_while(|k| **k != failing.0)
            .skip(1)
            .map(|k| self.obj(k))
            .collect();
        let mut summary = vec![];
        if rolled_back.is_empty() {
            summary.push("no earlier write to undo".to_string());
        } else {
            summary.push(format!("rolled back: {}", rolled_back.join(", ")));
        }
        if !left.is_empty() {
            summary.push(format!("left as it was: {}", left.join(", ")));
        }
        let summary = summary.join("; ");
        assert!(
            out.stderr.contains(&summary) && !out.stderr.contains("ROLLBACK FAILED"),
            "want {summary:?} in:\n{}",
            out.stderr
        );
        self.assert_untouched();
        self.proxy.set_rules(json!([]));
        self.pin().assert_code(0);
        self.assert_pinned();
    }
}

fn k8s(method: &str, path: &str, code: u16, reason: &str, message: &str) -> Value {
    json!([{"method": method, "path": path, "status": code, "k8s": true, "reason": reason, "body": message}])
}

#[test]
fn conflict_409_on_a_write_rolls_the_release_back() {
    let Some(bed) = Bed::get() else { return };
    let a = Api::new(
        &bed,
        "a409",
        k8s(
            "PATCH",
            "/configmaps/a409-rel-config",
            409,
            "Conflict",
            "Operation cannot be fulfilled on configmaps \"a409-rel-config\": the object has been modified; please apply your changes to the latest version and try again",
        ),
    );
    a.assert_pin_fails_and_rolls_back(
        &[
            "configmap/a409-rel-config changed since the plan was made",
            "review with `kubectl astro-sha show`",
        ],
        ("configmap", "409"),
        &["deployment", "statefulset"],
    );
}

#[test]
fn forbidden_403_on_one_kind() {
    let Some(bed) = Bed::get() else { return };
    // Reading: StatefulSets may not be listed -> show and pin stop before anything else.
    let a = Api::new(
        &bed,
        "a403",
        k8s(
            "GET",
            "/apis/apps/v1/namespaces/[^/]+/statefulsets",
            403,
            "Forbidden",
            "statefulsets.apps is forbidden: User \"admin\" cannot list resource \"statefulsets\" in API group \"apps\"",
        ),
    );
    for out in [a.show(), a.pin()] {
        out.assert_code(2);
        assert!(
            out.stderr.contains(&format!(
                "forbidden: cannot list statefulsets.apps in namespace \"{}\"",
                a.ns.name
            )) && out
                .stderr
                .contains("hint: ask a cluster admin for a Role granting `list`"),
            "{}",
            out.stderr
        );
    }
    a.assert_untouched();
    // Writing: the access review says yes, the write of the StatefulSet is refused anyway.
    a.proxy.set_rules(k8s(
        "PATCH",
        "/statefulsets/",
        403,
        "Forbidden",
        "statefulsets.apps \"a403-rel-scheduler\" is forbidden: User \"admin\" cannot patch resource \"statefulsets\"",
    ));
    a.assert_pin_fails_and_rolls_back(
        &[
            "forbidden: cannot patch statefulsets.apps",
            "Role granting `patch`",
        ],
        ("statefulset", "403"),
        &["deployment"],
    );
}

#[test]
fn missing_namespace_404_and_an_object_deleted_mid_run() {
    let Some(bed) = Bed::get() else { return };
    let a = Api::new(&bed, "a404", json!([]));
    let show = a.run(&["show", "-n", "no-such-namespace-a404"]);
    let pin = a.run(&["pin", "--all", "-n", "no-such-namespace-a404", "--yes"]);
    for (cmd, out) in [("show", show), ("pin", pin)] {
        out.assert_code(2);
        assert!(
            out.stderr
                .contains("namespace \"no-such-namespace-a404\" not found")
                && out.stderr.contains("kubectl get namespaces"),
            "{cmd}: {}",
            out.stderr
        );
    }
    // The ConfigMap (or its namespace) is gone when its write arrives.
    a.proxy.set_rules(k8s(
        "PATCH",
        "/configmaps/a404-rel-config",
        404,
        "NotFound",
        "configmaps \"a404-rel-config\" not found",
    ));
    a.assert_pin_fails_and_rolls_back(
        &[
            "configmap/a404-rel-config deleted since the plan was made",
            "run again to plan against the current state",
        ],
        ("configmap", "404"),
        &["deployment", "statefulset"],
    );
}

#[test]
fn too_large_413_and_invalid_422_on_a_write() {
    let Some(bed) = Bed::get() else { return };
    let a = Api::new(
        &bed,
        "a413",
        k8s(
            "PATCH",
            "/statefulsets/",
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728",
        ),
    );
    a.assert_pin_fails_and_rolls_back(
        &[
            "refused the request as too large (413, patch statefulsets.apps",
            "limit is 3145728",
        ],
        ("statefulset", "413"),
        &["deployment"],
    );
    // Unpin puts the tags back, so the 422 case starts from the same state.
    a.run(&["unpin", &a.release, "-n", &a.ns, "--yes"])
        .assert_code(0);
    a.assert_untouched();
    // A validation error is NOT "someone changed it": it is reported as what it is.
    a.proxy.set_rules(k8s(
        "PATCH",
        "/configmaps/",
        422,
        "Invalid",
        "ConfigMap \"a413-rel-config\" is invalid: data: Too long: must have at most 1048576 bytes",
    ));
    let out = a.pin();
    assert!(
        !out.stderr.contains("changed since the plan"),
        "a 422 validation error is not a concurrent change: {}",
        out.stderr
    );
    a.assert_pin_fails_and_rolls_back(
        &["refused the change as invalid (422", "Too long"],
        ("configmap", "422"),
        &["deployment", "statefulset"],
    );
}

#[test]
fn api_errors_while_reading_are_clear_and_write_nothing() {
    let Some(bed) = Bed::get() else { return };
    let a = Api::new(
        &bed,
        "a5xx",
        json!([{"method": "GET", "path": "/api/v1/namespaces/[^/]+/pods", "status": 500, "k8s": true,
                "reason": "InternalError", "body": "etcdserver: request timed out"}]),
    );
    for out in [a.show(), a.pin()] {
        out.assert_code(2);
        assert!(
            out.stderr
                .contains("API server answered 500 to list pods in namespace")
                && out.stderr.contains("etcdserver: request timed out"),
            "{}",
            out.stderr
        );
    }
    a.assert_untouched();
}

#[test]
fn a_write_applied_whose_answer_is_lost_converges_on_rerun() {
    let Some(bed) = Bed::get() else { return };
    // The StatefulSet write reaches the API server, but the connection drops before the answer.
    let a = Api::new(
        &bed,
        "alost",
        json!([{"method": "PATCH", "path": "/statefulsets/", "times": 1, "reset_after_forward": true}]),
    );
    let mark = a.proxy.mark();
    let out = a.pin();
    out.assert_code(2);
    assert!(
        out.stderr.contains("cannot reach the API server")
            && out.stderr.contains(&format!(
                "rolled back: {}; left as it was: {}\n",
                a.obj("deployment"),
                a.obj("configmap")
            )),
        "{}",
        out.stderr
    );
    assert_eq!(
        a.proxy.patches_since(mark),
        [
            (a.path("deployment"), "200".to_string()),
            (a.path("statefulset"), "reset".to_string()),
            (a.path("deployment"), "200".to_string()),
        ],
        "the StatefulSet's write reached the API server; only the Deployment's was undone"
    );
    // What is left, object by object: the StatefulSet pinned with its record (its write was
    // applied, its answer lost, so it was not rolled back), the Deployment rolled back, the
    // ConfigMap untouched.
    let pinned = format!("{}@{}", a.image, bed.seeded_digest(REPO, TAG));
    let states = object_states(|x| bed.get_json(x), &a.ns, REPO);
    let want: std::collections::BTreeMap<String, (Vec<String>, bool)> = [
        (a.obj("deployment"), (vec![a.image.clone()], false)),
        (a.obj("statefulset"), (vec![pinned; 3], true)),
        (a.obj("configmap"), (vec![a.image.clone()], false)),
    ]
    .into_iter()
    .collect();
    assert_eq!(states, want);
    // A rerun finishes the job; unpin then restores exactly.
    let out = a.pin();
    out.assert_code(0);
    // The plan: the StatefulSet's three containers are already pinned (action none), the
    // Deployment's and the pod template's are pinned now.
    let sts = a.obj("statefulset");
    let sts_name = sts.split_once('/').map_or(sts.as_str(), |(_, n)| n);
    let actions: Vec<(bool, String)> = out
        .stdout
        .lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            (
                cells.get(1).is_some_and(|w| w.ends_with(sts_name)),
                cells.get(4).unwrap_or(&"").to_string(),
            )
        })
        .collect();
    let on_sts: Vec<&str> = actions
        .iter()
        .filter(|(s, _)| *s)
        .map(|(_, a)| a.as_str())
        .collect();
    assert_eq!(on_sts, ["none"; 3], "{}", out.stdout);
    assert!(
        actions.iter().any(|(s, a)| !s && a == "pin"),
        "{}",
        out.stdout
    );
    a.assert_pinned();
    a.run(&["unpin", &a.release, "-n", &a.ns, "--yes"])
        .assert_code(0);
    a.assert_untouched();
}

/// A release in a namespace of a private cluster.
fn own_release(own: &OwnCluster, bed: &Bed, ns: &str) -> (String, String) {
    let release = format!("{ns}-rel");
    let image = format!("{}/{REPO}:{TAG}", bed.reg_token);
    own.apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n---\n{}",
        airflow_release_yaml(ns, &release, &image, "StatefulSet")
    ));
    (release, image)
}

fn own_run(bed: &Bed, kubeconfig: &std::path::Path, args: &[&str]) -> Out {
    bed.run_with(args, |c| {
        c.env("KUBECONFIG", kubeconfig);
    })
}

#[test]
fn api_server_killed_between_two_writes_of_a_pin_then_a_rerun_converges() {
    let Some(bed) = Bed::get() else { return };
    let own = OwnCluster::start("kill");
    let ns = "killed";
    let (release, image) = own_release(&own, &bed, ns);
    // Hold the second write (the StatefulSet) at the proxy while the API server is killed.
    let proxy = Proxy::apiserver(&own.dir, &own.api_addr(), json!([]));
    let go = proxy.path("go");
    proxy.set_rules(
        json!([{"method": "PATCH", "path": "/statefulsets/", "hold_until": go, "hold_max": 60}]),
    );
    let kubeconfig = proxy.kubeconfig(&own.kubeconfig);
    let child = bed
        .cmd()
        .args(["pin", &release, "-n", ns, "--yes"])
        .env("KUBECONFIG", &kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn pin");
    // The first write (the webserver Deployment) went through ...
    proxy.wait_for(60, "the first PATCH answered", |r| {
        r["method"] == "PATCH"
            && r["path"]
                .as_str()
                .is_some_and(|p| p.contains("/deployments/"))
            && r["status"] == 200
    });
    // ... the second is held (or, if it has not left yet, will meet a dead server anyway): kill
    // the API server, then let the write go.
    own.kill("kube-apiserver");
    std::fs::write(&go, "").expect("release the held write");
    let out: Out = child.wait_with_output().expect("pin output").into();
    out.assert_code(2);
    // What happened, per object: the Deployment's rollback failed (the server is gone), the
    // ConfigMap was never written; nothing claims to have been rolled back.
    let web = format!("deployment/{release}-webserver");
    assert!(
        out.stderr.contains("cannot reach the API server")
            && out.stderr.contains(&format!("rollback failed: {web} ("))
            && out.stderr.contains("it keeps the change and its record")
            && out
                .stderr
                .contains(&format!("left as it was: configmap/{release}-config"))
            && !out.stderr.contains("rolled back"),
        "the failure and the failed rollback are both reported, and nothing else: {}",
        out.stderr
    );
    // The API server comes back: what is there is whole objects (each write is one atomic
    // patch with its record): the Deployment wholly pinned with its record, the rest wholly
    // untouched without one. A rerun of the same command finishes the release.
    own.restart();
    let pinned = format!("{image}@{}", bed.seeded_digest(REPO, TAG));
    let want: std::collections::BTreeMap<String, (Vec<String>, bool)> = [
        (web.clone(), (vec![pinned.clone()], true)),
        (
            format!("statefulset/{release}-scheduler"),
            (vec![image.clone(); 3], false),
        ),
        (
            format!("configmap/{release}-config"),
            (vec![image.clone()], false),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(object_states(|a| own.get_json(a), ns, REPO), want);
    let out = own_run(&bed, &own.kubeconfig, &["pin", &release, "-n", ns, "--yes"]);
    out.assert_code(0);
    let (imgs, annotated) = release_state(|a| own.get_json(a), ns, REPO);
    assert!(imgs.iter().all(|i| *i == pinned), "all pinned: {imgs:?}");
    assert_eq!(imgs.len(), 5);
    assert_eq!(annotated, 3);
    // And the records are complete: unpin restores every original.
    own_run(
        &bed,
        &own.kubeconfig,
        &["unpin", &release, "-n", ns, "--yes"],
    )
    .assert_code(0);
    let (imgs, annotated) = release_state(|a| own.get_json(a), ns, REPO);
    assert!(imgs.iter().all(|i| *i == image), "{imgs:?}");
    assert_eq!(annotated, 0);
}

#[test]
fn etcd_restarted_commands_fail_clearly_then_recover() {
    let Some(bed) = Bed::get() else { return };
    let own = OwnCluster::start("etcd");
    let ns = "etcdrestart";
    let (release, image) = own_release(&own, &bed, ns);
    let apiserver = own.pid("kube-apiserver").expect("kube-apiserver pid");
    own.kill("etcd");
    let t = "4s";
    let show = own_run(
        &bed,
        &own.kubeconfig,
        &["show", &release, "-n", ns, "--request-timeout", t],
    );
    let pin = own_run(
        &bed,
        &own.kubeconfig,
        &["pin", &release, "-n", ns, "--yes", "--request-timeout", t],
    );
    for (cmd, out) in [("show", show), ("pin", pin)] {
        out.assert_code(2);
        // The API server is up and accepts the connection; without etcd it either does not
        // answer within the timeout, or answers 500 (`transport is closing`) first. Either way
        // the message names the API server and its etcd and says to retry.
        let timed_out = out.stderr.contains("did not answer in time");
        let answered_5xx = out.stderr.contains("API server answered 5");
        assert!(
            timed_out != answered_5xx
                && out.stderr.contains("API server")
                && out.stderr.contains("its etcd is down")
                && out.stderr.contains("retry"),
            "{cmd} with etcd down: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("ERROR"),
            "no duplicate log line: {}",
            out.stderr
        );
    }
    own.restart();
    // `restart` starts only what is not running: the API server must still be the same process.
    assert_eq!(
        own.pid("kube-apiserver").as_deref(),
        Some(apiserver.as_str()),
        "scripts/testbed restarted the API server"
    );
    // The API server reconnects to the restarted etcd by itself; commands work again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = own_run(
            &bed,
            &own.kubeconfig,
            &["show", &release, "-n", ns, "-o", "json"],
        );
        if out.ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "show never recovered after etcd came back: {}",
            out.stderr
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_eq!(
        own.pid("kube-apiserver").as_deref(),
        Some(apiserver.as_str()),
        "the API server recovered without a restart"
    );
    assert!(
        std::fs::read(format!("/proc/{apiserver}/cmdline")).is_ok_and(|c| !c.is_empty()),
        "the first API server process is still alive"
    );
    let (imgs, annotated) = release_state(|a| own.get_json(a), ns, REPO);
    assert_eq!(
        imgs,
        vec![image.clone(); 5],
        "nothing written while etcd was down"
    );
    assert_eq!(annotated, 0);
    own_run(&bed, &own.kubeconfig, &["pin", &release, "-n", ns, "--yes"]).assert_code(0);
    let (imgs, annotated) = release_state(|a| own.get_json(a), ns, REPO);
    let pinned = format!("{image}@{}", bed.seeded_digest(REPO, TAG));
    assert!(imgs.iter().all(|i| *i == pinned), "{imgs:?}");
    assert_eq!(annotated, 3);
}
