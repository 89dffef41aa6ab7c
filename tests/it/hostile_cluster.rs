//! Hostile cluster and files (issue 11): what enters from the cluster (pull secrets, annotations,
//! the releases ConfigMap, image references) and what the tool writes (records, files) under
//! concurrent writers, interruption and hostile input. Every test runs the real binary against the
//! bed and reads back what is there afterwards.
use crate::support;

use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use crate::pin::release;
use crate::support::faults::{object_states, Proxy};
use crate::support::hostile::{assert_cut_by_the_client, Hostile};
use crate::support::{Bed, Out};

const REPO: &str = "astronomer/astro-runtime";
const TAG: &str = "12.1.0";
const ANNOTATION: &str = "astro-sha.github.io/original-images";

fn no_escape(out: &Out) {
    for (name, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}') && !text.contains('\u{9b}'),
            "a control character reached the terminal on {name}: {text:?}"
        );
    }
}

fn docker_config_json(host: &str, user: &str, password: &str) -> String {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    json!({"auths": {host: {"auth": auth}}}).to_string()
}

fn pull_secret(ns: &str, name: &str, host: &str, password: &str) -> String {
    use base64::Engine;
    let payload = base64::engine::general_purpose::STANDARD
        .encode(docker_config_json(host, "testuser", password));
    json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": name, "namespace": ns},
        "data": {".dockerconfigjson": payload}})
    .to_string()
}

/// One Deployment of an Airflow release whose webserver runs `image`, with these pull secrets.
fn webserver(ns: &str, release: &str, image: &str, secrets: &[&str]) -> String {
    let secrets: Vec<Value> = secrets.iter().map(|s| json!({"name": s})).collect();
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": format!("{release}-webserver"), "namespace": ns,
            "labels": {"tier": "airflow", "component": "webserver", "release": release}},
        "spec": {"replicas": 1,
            "selector": {"matchLabels": {"tier": "airflow", "component": "webserver", "release": release}},
            "template": {"metadata": {"labels": {"tier": "airflow", "component": "webserver", "release": release}},
                "spec": {"imagePullSecrets": secrets,
                    "containers": [{"name": "webserver", "image": image}]}}}})
    .to_string()
}

/// Pull secrets follow the kubelet (issue 11): a workload's images are resolved with the pull
/// secrets of ITS pod spec, else of its ServiceAccount (the ServiceAccount admission plugin copies
/// those into a pod that names none: kubernetes plugin/pkg/admission/serviceaccount), in its own
/// namespace. Three namespaces on the basic-auth registry, each with a secret called `regcred`:
/// A's holds a wrong password, B's the right one, C's workload names none and its `default`
/// ServiceAccount carries the right one. Before the fix the secrets were pooled (first one wins):
/// A's broken secret made B's image `unresolved`. And the reads stay bounded under -A: one list of
/// Secrets and one of ServiceAccounts for the whole cluster, never one per namespace.
#[test]
fn pull_secrets_stay_in_their_namespace_and_a_broken_one_costs_only_its_workloads() {
    let Some(bed) = Bed::get() else { return };
    let image = format!("{}/{REPO}:{TAG}", bed.reg_basic);
    let digest = bed.seeded_digest(REPO, TAG);
    let a = bed.namespace("psa");
    let b = bed.namespace("psb");
    let c = bed.namespace("psc");
    bed.apply(&pull_secret(&a, "regcred", &bed.reg_basic, "wrong"));
    bed.apply(&pull_secret(&b, "regcred", &bed.reg_basic, "testpassword"));
    bed.apply(&pull_secret(&c, "sa-cred", &bed.reg_basic, "testpassword"));
    bed.apply(
        &json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": &*c},
            "imagePullSecrets": [{"name": "sa-cred"}]})
        .to_string(),
    );
    let (ra, rb, rc) = (format!("{a}-r"), format!("{b}-r"), format!("{c}-r"));
    bed.apply(&webserver(&a, &ra, &image, &["regcred"]));
    bed.apply(&webserver(&b, &rb, &image, &["regcred"]));
    bed.apply(&webserver(&c, &rc, &image, &[]));

    // Through the API proxy, to count the list calls.
    let proxy = Proxy::apiserver(&bed.dir, &bed.api, json!([]));
    let kubeconfig = proxy.kubeconfig(&bed.kubeconfig);
    let out = bed.run_with(&["show", &ra, &rb, &rc, "-o", "json"], |cmd| {
        cmd.env("KUBECONFIG", &kubeconfig);
    });
    let items = out.json()["items"].as_array().expect("items").clone();
    let row = |ns: &str| {
        items
            .iter()
            .find(|i| i["namespace"] == ns)
            .unwrap_or_else(|| panic!("no row for {ns}: {items:?}"))
            .clone()
    };
    let (ia, ib, ic) = (row(&a), row(&b), row(&c));
    assert_eq!(
        ib["registryDigest"],
        digest.as_str(),
        "B's good secret: {ib}"
    );
    assert_eq!(
        ic["registryDigest"],
        digest.as_str(),
        "C's ServiceAccount's secret: {ic}"
    );
    assert!(ia["registryDigest"].is_null(), "A's broken secret: {ia}");
    assert!(
        ia["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("unresolved")),
        "{ia}"
    );
    assert!(
        out.stderr.contains("unauthorized") && out.stderr.contains("configured credentials"),
        "A's failure names its credentials: {}",
        out.stderr
    );
    // Without --check, an unresolved tag is a warning and exit 1: the answer is incomplete.
    out.assert_code(1);
    let lists = |what: &str| {
        proxy
            .requests()
            .iter()
            .filter(|r| {
                r["method"] == "GET"
                    && r["path"]
                        .as_str()
                        .is_some_and(|p| p.split('?').next().unwrap_or("").ends_with(what))
            })
            .map(|r| r["path"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    let secrets = lists("/secrets");
    let sas = lists("/serviceaccounts");
    assert_eq!(secrets.len(), 1, "one list of Secrets: {secrets:?}");
    assert_eq!(sas.len(), 1, "one list of ServiceAccounts: {sas:?}");
    assert!(
        secrets[0].starts_with("/api/v1/secrets?")
            && sas[0].starts_with("/api/v1/serviceaccounts?"),
        "cluster-wide, not per namespace: {secrets:?} {sas:?}"
    );
}

/// The records annotation is written with a JSON Patch `test` of what the plan saw (issue 11).
/// Two pins of one Deployment that change DIFFERENT containers (one per Runtime repository) both
/// pass their image tests; without a test on the annotation the later write replaces the records
/// of the earlier one, and unpin can no longer restore that container. The first pin is held at
/// the API proxy after its plan (its access review is the observable event), the second runs to
/// completion, then the first write is let go: it must be refused as "changed since the plan",
/// and the second's record must survive. A rerun then adds its own record beside it.
///
/// kube-apiserver's JSON Patch (evanphx/json-patch) treats a missing member as null in a `test`
/// operation; seen on the bed's 1.20: `test /metadata/annotations/x null` passes when x is absent
/// and fails when it is present, which is how "absent at plan time" is tested.
#[test]
fn a_concurrent_pin_cannot_lose_the_other_pins_records() {
    let Some(bed) = Bed::get() else { return };
    let ns = bed.namespace("race");
    let release = format!("{ns}-r");
    let a2 = format!("{}/{REPO}:{TAG}", bed.reg_token);
    let a3 = format!("{}/runtime:3.0-1", bed.reg_token);
    bed.apply(
        &json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": format!("{release}-webserver"), "namespace": &*ns,
                "labels": {"tier": "airflow", "component": "webserver", "release": &release}},
            "spec": {"replicas": 1,
                "selector": {"matchLabels": {"tier": "airflow", "component": "webserver", "release": &release}},
                "template": {"metadata": {"labels": {"tier": "airflow", "component": "webserver", "release": &release}},
                    "spec": {"containers": [
                        {"name": "two", "image": &a2},
                        {"name": "three", "image": &a3}]}}}})
        .to_string(),
    );
    let only = |repo: &str| format!("{}/{repo}", bed.reg_token);
    let proxy = Proxy::apiserver(&bed.dir, &bed.api, json!([]));
    let go = proxy.path("go");
    proxy.set_rules(
        json!([{"method": "PATCH", "path": "/deployments/", "hold_until": go, "hold_max": 60}]),
    );
    let kubeconfig = proxy.kubeconfig(&bed.kubeconfig);
    let first = bed
        .cmd()
        .args(["pin", &release, "-n", &ns, "--yes", "--runtime-repository"])
        .arg(only(REPO))
        .env("KUBECONFIG", &kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the first pin");
    // Its plan is made; the access review is its last request before the (held) write.
    proxy.wait_for(60, "the first pin's access review", |r| {
        r["method"] == "POST"
            && r["path"]
                .as_str()
                .is_some_and(|p| p.contains("selfsubjectaccessreviews"))
    });
    let second = bed.run(&[
        "pin",
        &release,
        "-n",
        &ns,
        "--yes",
        "--runtime-repository",
        &only("runtime"),
    ]);
    second.assert_code(0);
    std::fs::write(&go, "").expect("let the first write go");
    let first: Out = first.wait_with_output().expect("first pin").into();
    first.assert_code(2);
    assert!(
        first.stderr.contains("changed since the plan was made"),
        "{}",
        first.stderr
    );
    let d3 = bed.seeded_digest("runtime", "3.0-1");
    let d2 = bed.seeded_digest(REPO, TAG);
    let records = |obj: &Value| -> Value {
        serde_json::from_str(
            obj["metadata"]["annotations"][ANNOTATION]
                .as_str()
                .expect("records annotation"),
        )
        .expect("records JSON")
    };
    let name = format!("{release}-webserver");
    let obj = bed.get_json(&["deployment", &name, "-n", &ns]);
    let images: Vec<&str> = obj["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["image"].as_str().unwrap())
        .collect();
    assert_eq!(images, [a2.clone(), format!("{a3}@{d3}")]);
    let r = records(&obj);
    assert_eq!(r["container:three"]["original"], a3.as_str(), "{r}");
    assert!(r.get("container:two").is_none(), "{r}");
    // The rerun plans against what is there now and keeps the other record.
    proxy.set_rules(json!([]));
    bed.run(&[
        "pin",
        &release,
        "-n",
        &ns,
        "--yes",
        "--runtime-repository",
        &only(REPO),
    ])
    .assert_code(0);
    let obj = bed.get_json(&["deployment", &name, "-n", &ns]);
    let r = records(&obj);
    assert_eq!(r["container:three"]["original"], a3.as_str(), "{r}");
    assert_eq!(r["container:two"]["original"], a2.as_str(), "{r}");
    assert_eq!(r["container:two"]["pinned"], format!("{a2}@{d2}"), "{r}");
}

/// A `pin` whose second write (the StatefulSet) is in flight: held at the API proxy, the first
/// (the webserver Deployment) answered. `go` lets the held write on.
struct HeldApply {
    ns: support::TestNamespace,
    release: String,
    before: std::collections::BTreeMap<String, (Vec<String>, bool)>,
    proxy: Proxy,
    go: std::path::PathBuf,
    child: Child,
}

fn pin_held_at_the_statefulset(bed: &Bed, prefix: &str) -> HeldApply {
    let (ns, release, _) = release(bed, prefix, "StatefulSet");
    let before = object_states(|a| bed.get_json(a), &ns, REPO);
    let proxy = Proxy::apiserver(&bed.dir, &bed.api, json!([]));
    let go = proxy.path("go");
    let held = proxy.path("held");
    proxy.set_rules(
        json!([{"method": "PATCH", "path": "/statefulsets/", "hold_until": go,
        "hold_max": 60, "held_mark": held}]),
    );
    let kubeconfig = proxy.kubeconfig(&bed.kubeconfig);
    let child: Child = bed
        .cmd()
        .args(["pin", &release, "-n", &ns, "--yes"])
        .env("KUBECONFIG", &kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pin");
    // The first write (the webserver Deployment) was answered, and the second (the StatefulSet)
    // is in flight: the proxy holds it and says so.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !held.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the StatefulSet write never arrived: {:#?}",
            proxy.requests()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    HeldApply {
        ns,
        release,
        before,
        proxy,
        go,
        child,
    }
}

fn signal(pid: u32, name: &str) {
    let kill = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(kill.success(), "kill -{name} {pid}");
}

/// One signal during apply (issue 11): the object in flight is finished, nothing further is
/// written, the release's earlier writes are rolled back, each object's fate is reported, and
/// the exit is non-zero. Once the held StatefulSet write is in flight, `sig` is sent and the
/// write let go. Then every object is read back: all as before the run, no records left.
fn one_signal_mid_apply_rolls_the_release_back(bed: &Bed, prefix: &str, sig: &str) {
    let h = pin_held_at_the_statefulset(bed, prefix);
    signal(h.child.id(), sig);
    std::fs::write(&h.go, "").expect("let the held write go");
    let out: Out = h.child.wait_with_output().expect("pin output").into();
    out.assert_code(2);
    let web = format!("deployment/{}-webserver", h.release);
    let sts = format!("statefulset/{}-scheduler", h.release);
    let cm = format!("configmap/{}-config", h.release);
    assert!(
        out.stderr
            .contains("interrupted: finishing the write in flight"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!("rolled back: {sts}, {web}"))
            && out.stderr.contains(&format!("left as it was: {cm}"))
            && !out.stderr.contains("ROLLBACK FAILED"),
        "each object's fate: {}",
        out.stderr
    );
    // The held write finished (200), then both writes were undone, newest first; the ConfigMap
    // was never written.
    let patches = h.proxy.patches_since(0);
    let path = |o: &str| {
        let (k, n) = o.split_once('/').unwrap();
        format!("{k}s/{n}")
    };
    assert_eq!(
        patches,
        vec![
            (path(&web), "200".to_string()),
            (path(&sts), "200".to_string()),
            (path(&sts), "200".to_string()),
            (path(&web), "200".to_string()),
        ],
    );
    assert_eq!(object_states(|a| bed.get_json(a), &h.ns, REPO), h.before);
}

/// Ctrl-C during apply: see [`one_signal_mid_apply_rolls_the_release_back`].
#[test]
fn sigint_mid_apply_finishes_the_write_in_flight_and_rolls_the_release_back() {
    let Some(bed) = Bed::get() else { return };
    one_signal_mid_apply_rolls_the_release_back(&bed, "sigint", "INT");
}

/// SIGTERM (what `kubectl delete pod`, systemd or a CI runner's cancel sends) is handled as
/// Ctrl-C is, as docs/faults.md says.
#[test]
fn sigterm_mid_apply_finishes_the_write_in_flight_and_rolls_the_release_back() {
    let Some(bed) = Bed::get() else { return };
    one_signal_mid_apply_rolls_the_release_back(&bed, "sigterm", "TERM");
}

/// A second signal stops at once (exit 130) without waiting for the write in flight or rolling
/// back, as docs/faults.md says; every object written carries its records, so `unpin` restores
/// the release. The first signal (INT) arrives while the StatefulSet write is held, the second
/// (TERM) once the run has said it is finishing that write.
#[test]
fn a_second_signal_stops_at_once_and_written_objects_keep_their_records() {
    let Some(bed) = Bed::get() else { return };
    let mut h = pin_held_at_the_statefulset(&bed, "sig2");
    let mut stderr = std::io::BufReader::new(h.child.stderr.take().expect("stderr"));
    signal(h.child.id(), "INT");
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut stderr, &mut line).expect("read stderr");
        assert!(n > 0, "pin ended before saying it was interrupted: {seen}");
        seen.push_str(&line);
        if line.contains("interrupted: finishing the write in flight") {
            break;
        }
    }
    signal(h.child.id(), "TERM");
    std::io::Read::read_to_string(&mut stderr, &mut seen).expect("read stderr");
    let status = h.child.wait().expect("pin exits");
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(
        seen.contains("interrupted again: stopping now; objects written so far keep their records")
            && !seen.contains("rolled back"),
        "{seen}"
    );
    // The held write goes on to the API server or not (its client is gone); once the proxy has
    // logged it, every object is either as before or pinned with its records.
    std::fs::write(&h.go, "").expect("let the held write go");
    h.proxy.wait_for(60, "the held StatefulSet write", |r| {
        r["method"] == "PATCH"
            && r["path"]
                .as_str()
                .is_some_and(|p| p.contains("/statefulsets/"))
    });
    let after = object_states(|a| bed.get_json(a), &h.ns, REPO);
    let pinned = format!(
        "{}/{REPO}:{TAG}@{}",
        bed.reg_token,
        bed.seeded_digest(REPO, TAG)
    );
    let web = format!("deployment/{}-webserver", h.release);
    assert_eq!(
        after.get(&web),
        Some(&(vec![pinned.clone()], true)),
        "the webserver was written, with its records: {after:#?}"
    );
    for (object, (images, recorded)) in &after {
        let written = h.before.get(object).map(|(i, _)| i) != Some(images);
        assert_eq!(
            written, *recorded,
            "{object}: written objects carry records, others none: {after:#?}"
        );
        if written {
            assert!(images.iter().all(|i| *i == pinned), "{object}: {images:?}");
        }
    }
    // unpin restores every object from its records.
    bed.run(&["unpin", &h.release, "-n", &h.ns, "--yes"])
        .assert_code(0);
    assert_eq!(object_states(|a| bed.get_json(a), &h.ns, REPO), h.before);
}

/// A private platform namespace with a Houston Deployment and a releases ConfigMap holding
/// `catalog` (digests under `sha256`).
fn platform_with_catalog(bed: &Bed, prefix: &str, catalog: &str) -> support::TestNamespace {
    let platform = bed.namespace(prefix);
    bed.apply(
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "astro-runtime-base-images", "namespace": &*platform},
            "data": {"astro_runtime_releases.json": catalog}})
        .to_string(),
    );
    bed.apply(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: astronomer-houston\n  namespace: {platform}\n  labels: {{component: houston, release: astronomer}}\nspec:\n  selector:\n    matchLabels: {{component: houston}}\n  template:\n    metadata:\n      labels: {{component: houston}}\n    spec:\n      containers:\n      - name: houston\n        image: quay.io/astronomer/ap-houston-api:0.37.4\n"
    ));
    platform
}

/// Digests that enter from the releases ConfigMap are validated before use (issue 11): an entry
/// whose digest is not `sha256:` + 64 lower-case hex (here one carrying an escape sequence) stops
/// `pin --from-configmap` and `--values-out` with an error naming the entry, nothing written and
/// no control character printed. The lenient reader used to hand it on, and the pin wrote
/// `image@<whatever>` into the Deployment.
#[test]
fn a_bad_digest_in_the_releases_configmap_is_refused_and_nothing_is_written() {
    let Some(bed) = Bed::get() else { return };
    let bad = "sha256:0123\u{1b}[2Jevil";
    let catalog =
        json!({"runtimeVersions": {TAG: {"metadata": {"channel": "stable"}, "sha256": bad}},
        "runtimeVersionsV3": {}})
        .to_string();
    let platform = platform_with_catalog(&bed, "badcm-plat", &catalog);
    let (ns, release, _) = release(&bed, "badcm", "Deployment");
    let before = object_states(|a| bed.get_json(a), &ns, REPO);
    let pin = &[
        "pin",
        &release,
        "-n",
        &ns,
        "--yes",
        "--from-configmap",
        "--platform-namespace",
        &platform,
    ];
    let out = bed.run(pin);
    out.assert_code(2);
    no_escape(&out);
    assert!(
        out.stderr.contains("releases ConfigMap astro-runtime-base-images: entry runtimeVersions \"12.1.0\" (sha256)")
            && out.stderr.contains("not a sha256 digest")
            && out.stderr.contains("nothing was changed"),
        "{}",
        out.stderr
    );
    assert_eq!(object_states(|a| bed.get_json(a), &ns, REPO), before);
    // --values-out: the same refusal, and no file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("values.yaml");
    let mut args = pin.to_vec();
    let file_arg = file.to_str().unwrap().to_string();
    args.extend(["--values-out", &file_arg]);
    let out = bed.run(&args);
    out.assert_code(2);
    no_escape(&out);
    assert!(!file.exists(), "nothing written");
    // A good entry is used.
    let good = bed.seeded_digest(REPO, TAG);
    let catalog =
        json!({"runtimeVersions": {TAG: {"metadata": {"channel": "stable"}, "sha256": &good}},
        "runtimeVersionsV3": {}})
        .to_string();
    bed.apply(
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "astro-runtime-base-images", "namespace": &*platform},
            "data": {"astro_runtime_releases.json": catalog}})
        .to_string(),
    );
    bed.run(&args).assert_code(0);
    let text = std::fs::read_to_string(&file).expect("values written");
    assert!(text.contains(&format!("digest: \"{good}\"")), "{text}");
}

/// `--values-out` writes atomically through the one helper (temp file in the same directory,
/// fsync, rename), and a symlinked target is written THROUGH (the link stays a link, its target
/// gets the content), as docs/faults.md documents; a dangling link is refused, nothing written.
/// Before, `std::fs::write` truncated the file in place (a reader could see half of it).
#[test]
fn values_out_writes_atomically_through_a_symlink() {
    let Some(bed) = Bed::get() else { return };
    let (ns, release, _) = release(&bed, "vout", "Deployment");
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.yaml");
    std::fs::write(&real, "old\n").unwrap();
    let link = dir.path().join("link.yaml");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    // A reader that opened the file before the write: after a rename it still holds the whole
    // old file (its inode is untouched); a write in place would show it the new bytes, or half.
    let mut reader = std::fs::File::open(&real).unwrap();
    let old_inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&real).unwrap());
    let out = bed.run(&[
        "pin",
        &release,
        "-n",
        &ns,
        "--values-out",
        link.to_str().unwrap(),
        "--yes",
    ]);
    out.assert_code(0);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "still a link"
    );
    let digest = bed.seeded_digest(REPO, TAG);
    let text = std::fs::read_to_string(&real).unwrap();
    assert!(text.contains(&format!("digest: \"{digest}\"")), "{text}");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        real,
        "the link still points where it did"
    );
    let new_inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&real).unwrap());
    assert_ne!(
        new_inode, old_inode,
        "the target was replaced by a rename, not rewritten in place"
    );
    let mut held = String::new();
    std::io::Read::read_to_string(&mut reader, &mut held).unwrap();
    assert_eq!(
        held, "old\n",
        "a reader of the old file saw none of the new one"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temp file left: {leftovers:?}");
    let dangling = dir.path().join("dangling.yaml");
    std::os::unix::fs::symlink(dir.path().join("missing/x.yaml"), &dangling).unwrap();
    let out = bed.run(&[
        "pin",
        &release,
        "-n",
        &ns,
        "--values-out",
        dangling.to_str().unwrap(),
        "--yes",
    ]);
    out.assert_code(2);
    assert!(out.stderr.contains("symbolic link"), "{}", out.stderr);
    assert!(!dir.path().join("missing").exists());
}

/// Control characters in an image reference on a workload never reach the terminal (issue 11):
/// not in show's table, its JSON (escaped by JSON itself), the pin plan's problems or the final
/// error. kube-apiserver accepts an image with an escape sequence (it checks only for
/// surrounding blanks), so anyone who may edit a Deployment can plant one.
#[test]
fn control_characters_in_an_image_on_a_workload_never_reach_the_terminal() {
    let Some(bed) = Bed::get() else { return };
    let ns = bed.namespace("ctrl");
    let release = format!("{ns}-r");
    let image = format!("{}/{REPO}:12.1.0\u{1b}[2J\u{7}", bed.reg_token);
    bed.apply(&webserver(&ns, &release, &image, &[]));
    let got = bed.get_json(&["deployment", &format!("{release}-webserver"), "-n", &ns]);
    assert_eq!(
        got["spec"]["template"]["spec"]["containers"][0]["image"],
        image.as_str(),
        "the API server stored the escape sequence"
    );
    // --all-images: an unreadable reference is then a row (state "unresolved: invalid
    // reference") whose IMAGE cell holds the raw text.
    let out = bed.run(&["show", &release, "-n", &ns, "-o", "wide", "--all-images"]);
    out.assert_code(1);
    no_escape(&out);
    assert!(
        out.stdout.contains("astro-runtime:12.1.0[2J") && out.stdout.contains("invalid reference"),
        "the row is there, without its control characters: {}",
        out.stdout
    );
    let name = format!("deployment/{release}-webserver");
    let written = |bed: &Bed| {
        let d = bed.get_json(&[&name, "-n", &ns]);
        (
            d["spec"]["template"].clone(),
            d["metadata"]["annotations"].clone(),
        )
    };
    let before = written(&bed);
    for (args, code) in [
        // Not an image it can read: show lists nothing to resolve, pin refuses (nothing to
        // pin, nothing written), unpin finds no records.
        (vec!["show", &release, "-n", &ns], 0),
        (vec!["pin", &release, "-n", &ns, "--yes", "--all-images"], 2),
        (vec!["unpin", &release, "-n", &ns, "--yes"], 0),
    ] {
        let out = bed.run(&args);
        no_escape(&out);
        out.assert_code(code);
        assert_eq!(written(&bed), before, "{args:?} wrote nothing");
    }
}

/// A catalog whose tags and digests carry control characters: import names the bad entry
/// without echoing a control character. A guard: import's own reader already escaped them
/// (`{:?}`) before issue 11; the releases-ConfigMap path is proven by
/// `a_bad_digest_in_the_releases_configmap_is_refused_and_nothing_is_written`.
#[test]
fn control_characters_in_a_catalog_never_reach_the_terminal() {
    let Some(bed) = Bed::get() else { return };
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("catalog.json");
    std::fs::write(
        &source,
        json!({"runtimeVersions": {"12.1.0\u{1b}]0;owned\u{7}": {"metadata": {"channel": "stable\u{1b}[31m"},
            "sha256": "sha256:\u{1b}[2J"}}, "runtimeVersionsV3": {}})
        .to_string(),
    )
    .unwrap();
    let out_file = dir.path().join("out.json");
    let out = bed.run(&[
        "import",
        "--source",
        source.to_str().unwrap(),
        "--include-yanked",
        "--allow-missing",
        "--output-file",
        out_file.to_str().unwrap(),
    ]);
    no_escape(&out);
    out.assert_code(2);
    // The entry is named with its control characters escaped, and nothing is written.
    assert!(
        out.stderr.contains(
            r#"runtimeVersions."12.1.0\u{1b}]0;owned\u{7}": sha256: "sha256:\u{1b}[2J": not a sha256 digest"#
        ),
        "{}",
        out.stderr
    );
    assert!(!out_file.exists(), "nothing written");
}

/// The catalog download is bounded (issue 11): a source that streams without end is cut off at
/// the limit with a clear error, and nothing is imported. The hostile registry's endless body
/// serves as that source; it says the client hung up after little more than 16 MiB.
#[test]
fn an_endless_catalog_download_stops_at_the_limit() {
    let Some(bed) = Bed::get() else { return };
    let h = Hostile::start(&bed, "endless", "none", "none", &[]);
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("out.json");
    let out = bed.run(&[
        "import",
        "--source",
        &format!(
            "http://{}/v2/astronomer/astro-runtime/manifests/catalog",
            h.host()
        ),
        "--output-file",
        out_file.to_str().unwrap(),
    ]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("the catalog is larger than 16 MiB; the read stopped there"),
        "{}",
        out.stderr
    );
    assert_cut_by_the_client(&h, 16 << 20);
    assert!(!out_file.exists());
}

/// The records annotation is text anyone who may edit the object can change (issue 11): the
/// original image unpin would write back is checked (a valid reference, a sha256 digest if it
/// has one), and records that are not JSON are reported, not ignored. Either is a problem for
/// the release: exit 2, nothing written.
#[test]
fn records_that_are_not_valid_stop_unpin_and_nothing_is_written() {
    let Some(bed) = Bed::get() else { return };
    let ns = bed.namespace("badrec");
    let release = format!("{ns}-r");
    let tagged = format!("{}/{REPO}:{TAG}", bed.reg_token);
    let pinned = format!("{tagged}@{}", bed.seeded_digest(REPO, TAG));
    bed.apply(&webserver(&ns, &release, &pinned, &[]));
    let name = format!("{release}-webserver");
    let annotate = |value: &str| {
        let o = bed.kubectl(&[
            "annotate",
            "--overwrite",
            "deployment",
            &name,
            "-n",
            &ns,
            &format!("{ANNOTATION}={value}"),
        ]);
        assert!(o.ok(), "{}", o.stderr);
    };
    let sha512 = format!("{tagged}@sha512:{}", "ab".repeat(64));
    annotate(&json!({"container:webserver": {"original": &sha512, "pinned": &pinned}}).to_string());
    let image_now = || {
        bed.get_json(&["deployment", &name, "-n", &ns])["spec"]["template"]["spec"]["containers"][0]
            ["image"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let out = bed.run(&["unpin", &release, "-n", &ns, "--yes"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains(
            "the original image recorded in the astro-sha.github.io/original-images annotation"
        ) && out.stderr.contains("only sha256 digests are accepted"),
        "{}",
        out.stderr
    );
    assert_eq!(image_now(), pinned, "nothing written");
    annotate("{not json\u{1b}[2J");
    let out = bed.run(&["unpin", &release, "-n", &ns, "--yes"]);
    out.assert_code(2);
    no_escape(&out);
    assert!(
        out.stderr
            .contains("annotation is not the records a pin writes"),
        "{}",
        out.stderr
    );
    assert_eq!(image_now(), pinned, "nothing written");
}
