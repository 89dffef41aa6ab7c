//! Fault matrix, registry rows: the project's fault proxy in front of the bed's token-auth
//! registry, and `resolve`, `show`, `pin` and `import` run through it. Every row asserts the command either
//! recovers (right digest) or stops with a clear error (exit code + message naming the host), and
//! that `pin` never leaves a half-written release.
use crate::support;

use crate::support::faults::Proxy;
use crate::support::{airflow_release_yaml, Bed, Out};
use serde_json::{json, Value};

const REPO: &str = "astronomer/astro-runtime";
/// Seeded tags, one per manifest kind: OCI manifest, OCI index, Docker list, Docker schema2.
const TAGS: [&str; 4] = ["12.1.0", "12.2.0", "11.0.0", "12.0.0"];
const TAG: &str = "12.1.0";

/// A namespace holding one Airflow release whose Runtime image is served through the proxy.
struct Fixture<'a> {
    bed: &'a Bed,
    proxy: &'a Proxy,
    ns: support::TestNamespace,
    release: String,
    image: String,
}

impl<'a> Fixture<'a> {
    fn new(bed: &'a Bed, proxy: &'a Proxy, prefix: &str) -> Fixture<'a> {
        let ns = bed.namespace(prefix);
        let release = format!("{prefix}-rel");
        let image = format!("{}/{REPO}:{TAG}", proxy.host());
        bed.apply(&airflow_release_yaml(&ns, &release, &image, "Deployment"));
        Fixture {
            bed,
            proxy,
            ns,
            release,
            image,
        }
    }

    /// The plugin, with the proxy's host allowed over plain HTTP.
    fn run(&self, args: &[&str]) -> Out {
        let insecure = format!(
            "{},{},{},{}",
            self.bed.reg_plain,
            self.bed.reg_basic,
            self.bed.reg_token,
            self.proxy.host()
        );
        self.bed.run_with(args, |c| {
            c.env("ASTRO_SHA_INSECURE_REGISTRY", insecure);
        })
    }

    fn resolve(&self, tags: &[&str], extra: &[&str]) -> Out {
        let refs: Vec<String> = tags
            .iter()
            .map(|t| format!("{}/{REPO}:{t}", self.proxy.host()))
            .collect();
        let mut args = vec!["resolve", "-o", "json"];
        args.extend_from_slice(extra);
        args.extend(refs.iter().map(String::as_str));
        self.run(&args)
    }

    fn show(&self, extra: &[&str]) -> Out {
        let mut args = vec!["show", &self.release, "-n", &self.ns, "-o", "json"];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// `import` of a catalog listing the four seeded tags, whose Airflow 2 repository is the
    /// proxy's, into the fixture's namespace.
    fn import(&self, extra: &[&str]) -> Out {
        let dir = tempfile::tempdir().expect("tempdir");
        let entries: Vec<String> = TAGS
            .iter()
            .map(|t| format!(r#""{t}": {{"metadata": {{"airflowVersion": "2.11.0", "channel": "stable", "yanked": false}}}}"#))
            .collect();
        let catalog = support::write_file(
            dir.path(),
            "catalog.json",
            &format!(
                "{{\"version\": \"1.0\", \"runtimeVersions\": {{{}}}}}",
                entries.join(", ")
            ),
        );
        let repo = format!("{}/{REPO}", self.proxy.host());
        let mut args = vec![
            "import",
            "--platform-namespace",
            &self.ns,
            "--source",
            catalog.to_str().expect("utf-8 path"),
            "--airflow2-repository",
            &repo,
            "--yes",
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// The imported releases ConfigMap, if any.
    fn configmap(&self) -> Option<Value> {
        let o = self.bed.kubectl(&[
            "-n",
            &self.ns,
            "get",
            "configmap",
            "astro-runtime-base-images",
            "-o",
            "json",
        ]);
        o.ok()
            .then(|| serde_json::from_str(&o.stdout).expect("configmap json"))
    }

    /// import succeeds and stores the seeded digest of every tag.
    #[track_caller]
    fn assert_import_ok(&self) {
        self.import(&[]).assert_code(0);
        let cm = self.configmap().expect("configmap written");
        let catalog: Value = serde_json::from_str(
            cm["data"]["astro_runtime_releases.json"]
                .as_str()
                .expect("catalog key"),
        )
        .expect("catalog JSON");
        for t in TAGS {
            assert_eq!(
                catalog["runtimeVersions"][t]["sha256"].as_str(),
                Some(self.bed.seeded_digest(REPO, t).as_str()),
                "{t}"
            );
        }
    }

    /// import stops with exit 2, says why, and writes nothing.
    #[track_caller]
    fn assert_import_refused(&self, extra: &[&str], stderr_has: &str) {
        let before = self.configmap();
        let out = self.import(extra);
        out.assert_code(2);
        assert!(
            out.stderr.contains(stderr_has) && out.stderr.contains("nothing written to configmap"),
            "{}",
            out.stderr
        );
        assert_eq!(self.configmap(), before, "import wrote nothing");
    }

    fn pin(&self, extra: &[&str]) -> Out {
        let mut args = vec!["pin", &self.release, "-n", &self.ns, "--yes"];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// Every Runtime image of the release (containers, init containers, pod template), and
    /// whether each object carries the bookkeeping annotation.
    fn runtime_images(&self) -> Vec<String> {
        let mut out = vec![];
        let list = self.bed.get_json(&["deployments", "-n", &self.ns]);
        for d in list["items"].as_array().expect("items") {
            let spec = &d["spec"]["template"]["spec"];
            for key in ["initContainers", "containers"] {
                for c in spec[key].as_array().into_iter().flatten() {
                    let img = c["image"].as_str().expect("image");
                    if img.contains(REPO) {
                        out.push(img.to_string());
                    }
                }
            }
        }
        let cm = self.bed.get_json(&[
            "configmap",
            &format!("{}-config", self.release),
            "-n",
            &self.ns,
        ]);
        let template = cm["data"]["pod_template_file.yaml"]
            .as_str()
            .expect("template");
        for line in template.lines() {
            if let Some(rest) = line.trim().strip_prefix("image: ") {
                out.push(rest.split_whitespace().next().unwrap_or("").to_string());
            }
        }
        out
    }

    fn annotated_objects(&self) -> usize {
        let mut n = 0;
        for kind in ["deployments", "configmaps"] {
            let list = self.bed.get_json(&[kind, "-n", &self.ns]);
            for o in list["items"].as_array().expect("items") {
                if o["metadata"]["annotations"]
                    .get("astro-sha.github.io/original-images")
                    .is_some()
                {
                    n += 1;
                }
            }
        }
        n
    }

    /// Nothing of the release was written: every Runtime image is the tag, no bookkeeping.
    #[track_caller]
    fn assert_untouched(&self) {
        let imgs = self.runtime_images();
        assert_eq!(
            imgs.len(),
            5,
            "scheduler init+main+groomer, webserver, template"
        );
        for i in &imgs {
            assert_eq!(i, &self.image, "nothing written");
        }
        assert_eq!(self.annotated_objects(), 0, "no bookkeeping annotation");
    }

    /// The whole release is pinned to the seeded digest.
    #[track_caller]
    fn assert_pinned(&self) {
        let want = format!("{}@{}", self.image, self.bed.seeded_digest(REPO, TAG));
        let imgs = self.runtime_images();
        assert_eq!(imgs.len(), 5);
        for i in &imgs {
            assert_eq!(i, &want, "every Runtime container pinned");
        }
        assert_eq!(self.annotated_objects(), 3, "2 Deployments + the ConfigMap");
    }
}

fn rows(out: &Out) -> Vec<Value> {
    out.json()["items"].as_array().expect("items").clone()
}

/// Asserts `resolve -o json` gave the seeded digest for each tag.
#[track_caller]
fn assert_resolved(bed: &Bed, out: &Out, tags: &[&str]) {
    out.assert_code(0);
    let items = rows(out);
    assert_eq!(items.len(), tags.len());
    for (it, tag) in items.iter().zip(tags) {
        assert_eq!(
            it["digest"].as_str(),
            Some(bed.seeded_digest(REPO, tag).as_str()),
            "{tag}: {it}"
        );
    }
}

/// Every show row is resolved to the seeded digest and tag-only.
#[track_caller]
fn assert_show_resolved(bed: &Bed, out: &Out) {
    out.assert_code(0);
    let items = rows(out);
    assert_eq!(items.len(), 5, "{}", out.stdout);
    for r in &items {
        assert_eq!(r["status"], "tag-only", "{r}");
        assert_eq!(
            r["registryDigest"].as_str(),
            Some(bed.seeded_digest(REPO, TAG).as_str())
        );
    }
}

/// show reports every row unresolved with `short`, and `--check` fails with 1.
#[track_caller]
fn assert_show_unresolved(f: &Fixture, short: &str, stderr_has: &str) {
    let out = f.show(&[]);
    // an unresolved tag leaves the answer incomplete: exit 1 even without --check (issue 23)
    out.assert_code(1);
    let items = rows(&out);
    assert_eq!(items.len(), 5, "{}", out.stdout);
    for r in items {
        assert_eq!(r["status"], format!("unresolved: {short}"), "{r}");
        assert!(r["registryDigest"].is_null());
    }
    assert!(
        out.stderr.contains(stderr_has) && out.stderr.contains(&f.proxy.host()),
        "warning names the fault and the host: {}",
        out.stderr
    );
    f.show(&["--check"]).assert_code(1);
}

/// pin stops before writing anything, naming the image and the fault.
#[track_caller]
fn assert_pin_refused(f: &Fixture, stderr_has: &str) {
    let out = f.pin(&[]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("nothing was changed")
            && out.stderr.contains(&f.image)
            && out.stderr.contains(stderr_has),
        "{}",
        out.stderr
    );
    f.assert_untouched();
}

/// Runs `f` and asserts the proxy injected a fault meanwhile: a recovery that never met its
/// fault (rules not yet re-read, a counter already spent) would prove nothing.
#[track_caller]
fn with_fault<T>(p: &Proxy, what: &str, f: impl FnOnce() -> T) -> T {
    let mark = p.mark();
    let r = f();
    assert!(
        !p.fired_since(mark).is_empty(),
        "{what}: the fault never fired: {:#?}",
        &p.requests()[mark..]
    );
    r
}

/// Manifest requests (any method) the proxy has seen so far.
fn manifest_requests(p: &Proxy) -> usize {
    p.count("HEAD", "/manifests/") + p.count("GET", "/manifests/")
}

fn manifests(methods: &[&str]) -> Value {
    json!({"method": methods, "path": "/manifests/"})
}

fn rule(base: Value, extra: Value) -> Value {
    let mut r = base;
    for (k, v) in extra.as_object().expect("object") {
        r[k] = v.clone();
    }
    r
}

#[test]
fn r429_with_retry_after_waits_and_recovers() {
    let Some(bed) = Bed::get() else { return };
    let rules = json!([rule(
        manifests(&["HEAD", "GET"]),
        json!({"times": 1, "status": 429, "headers": {"Retry-After": "1"}})
    )]);
    let p = Proxy::registry(&bed.reg_token, rules.clone());
    let f = Fixture::new(&bed, &p, "f429");

    assert_resolved(&bed, &f.resolve(&[TAG], &[]), &[TAG]);
    let heads: Vec<Value> = p
        .requests()
        .into_iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.contains("/manifests/"))
        })
        .collect();
    assert_eq!(heads.len(), 2, "one 429, one retry: {heads:?}");
    assert_eq!(
        heads[0]["method"], "GET",
        "resolve lists platforms: one GET per tag"
    );
    assert_eq!(heads[0]["status"], 429);
    assert_eq!(heads[1]["status"], 200);
    let t = |r: &Value| {
        r["time"].as_str().expect("time")[..23]
            .parse::<jiff::civil::DateTime>()
            .expect("time parses")
    };
    let waited = t(&heads[1]).duration_since(t(&heads[0]));
    assert!(
        waited >= jiff::SignedDuration::from_millis(950),
        "Retry-After: 1 honoured, waited {waited:?}"
    );

    p.set_rules(rules.clone());
    with_fault(&p, "show", || assert_show_resolved(&bed, &f.show(&[])));
    p.set_rules(rules.clone());
    with_fault(&p, "import", || f.assert_import_ok());
    p.set_rules(rules);
    with_fault(&p, "pin", || f.pin(&[])).assert_code(0);
    f.assert_pinned();
}

#[test]
fn r5xx_are_retried_then_reported_clearly() {
    let Some(bed) = Bed::get() else { return };
    // Transient: two 503s then the registry answers; the same for 500.
    let p = Proxy::registry(
        &bed.reg_token,
        json!([rule(
            manifests(&["HEAD", "GET"]),
            json!({"times": 2, "status": 503})
        )]),
    );
    let f = Fixture::new(&bed, &p, "f5xx");
    assert_resolved(&bed, &f.resolve(&[TAG], &[]), &[TAG]);
    assert_eq!(manifest_requests(&p), 3, "two 503s, then success");
    p.set_rules(json!([rule(
        manifests(&["HEAD", "GET"]),
        json!({"times": 2, "status": 500})
    )]));
    let mark = p.mark();
    assert_resolved(&bed, &f.resolve(&[TAG], &[]), &[TAG]);
    assert_eq!(p.fired_since(mark).len(), 2, "two 500s, then success");

    // Persistent: every command gives up after the retries with the status and the host.
    let persistent = json!([rule(manifests(&["HEAD", "GET"]), json!({"status": 503}))]);
    p.set_rules(persistent.clone());
    let before = manifest_requests(&p);
    let out = f.resolve(&[TAG], &[]);
    out.assert_code(1);
    assert!(
        out.stderr.contains(&format!(
            "{}/{REPO}: registry answered HTTP 503 (4 attempts)",
            p.host()
        )) && out.stderr.contains("hint:"),
        "{}",
        out.stderr
    );
    assert_eq!(manifest_requests(&p) - before, 4, "1 try + 3 retries");
    p.set_rules(persistent.clone());
    assert_show_unresolved(&f, "http 503", "HTTP 503");
    p.set_rules(persistent);
    f.assert_import_refused(&[], "registry answered HTTP 503 (4 attempts)");
    p.set_rules(json!([rule(
        manifests(&["HEAD", "GET"]),
        json!({"status": 500})
    )]));
    assert_pin_refused(&f, "HTTP 500 (4 attempts)");
    p.set_rules(json!([rule(
        manifests(&["HEAD", "GET"]),
        json!({"times": 2, "status": 500})
    )]));
    with_fault(&p, "import", || f.assert_import_ok());
}

#[test]
fn connection_reset_is_retried_then_reported() {
    let Some(bed) = Bed::get() else { return };
    let once = json!([rule(
        manifests(&["HEAD", "GET"]),
        json!({"times": 1, "reset": true})
    )]);
    let p = Proxy::registry(&bed.reg_token, once.clone());
    let f = Fixture::new(&bed, &p, "freset");
    assert_resolved(&bed, &f.resolve(&[TAG], &[]), &[TAG]);
    p.set_rules(once.clone());
    with_fault(&p, "show", || assert_show_resolved(&bed, &f.show(&[])));

    let always = json!([rule(manifests(&["HEAD", "GET"]), json!({"reset": true}))]);
    p.set_rules(always.clone());
    let out = f.resolve(&[TAG], &[]);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains(&format!("{}: connection failed", p.host()))
            && out.stderr.contains("reset")
            && out.stderr.contains("(4 attempts)"),
        "{}",
        out.stderr
    );
    p.set_rules(always.clone());
    assert_pin_refused(&f, "connection failed");
    p.set_rules(always);
    f.assert_import_refused(&[], "connection failed");
    p.set_rules(once.clone());
    with_fault(&p, "import", || f.assert_import_ok());
    p.set_rules(once);
    with_fault(&p, "pin", || f.pin(&[])).assert_code(0);
    f.assert_pinned();
}

/// Issue 23: `--registry-timeout` bounds ONE attempt of a request (connect, headers, body);
/// `--registry-retries` adds attempts. A registry that never answers in time (every request
/// held 5 s) is asked exactly 1 + retries times, each attempt cut at the timeout, and the run
/// ends saying so; counted by the proxy, not timed.
#[test]
fn the_registry_timeout_bounds_one_attempt_and_retries_add_attempts() {
    let Some(bed) = Bed::get() else { return };
    let held = json!([{"method": "GET", "path": "^/v2/$", "delay": 5}]);
    let p = Proxy::registry(&bed.reg_plain, held);
    let image = format!("{}/{REPO}:{TAG}", p.host());
    let out = bed.run_with(
        &[
            "resolve",
            &image,
            "--insecure-registry",
            &p.host(),
            "--registry-timeout",
            "1s",
            "--registry-retries",
            "2",
        ],
        |_| {},
    );
    out.assert_code(1);
    assert!(
        out.stderr
            .contains(&format!("{}: no answer within 1s (3 attempts)", p.host())),
        "{}",
        out.stderr
    );
    let pings = p
        .settled_requests()
        .iter()
        .filter(|r| r["method"] == "GET" && r["path"] == "/v2/")
        .count();
    assert_eq!(
        pings,
        3,
        "one attempt plus two retries: {:#?}",
        p.requests()
    );
}

#[test]
fn slower_than_the_registry_timeout_is_a_timeout_naming_the_host() {
    let Some(bed) = Bed::get() else { return };
    let slow_once = json!([rule(
        manifests(&["HEAD", "GET"]),
        json!({"times": 1, "delay": 3})
    )]);
    let p = Proxy::registry(&bed.reg_token, slow_once.clone());
    let f = Fixture::new(&bed, &p, "fslow");
    let fast = ["--registry-timeout", "1s", "--registry-retries", "1"];
    // One slow answer: the retry gets through.
    assert_resolved(&bed, &f.resolve(&[TAG], &fast), &[TAG]);

    let slow = json!([rule(manifests(&["HEAD", "GET"]), json!({"delay": 3}))]);
    p.set_rules(slow.clone());
    let out = f.resolve(&[TAG], &fast);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains(&format!("{}: no answer within 1s (2 attempts)", p.host()))
            && out.stderr.contains("--registry-timeout"),
        "{}",
        out.stderr
    );
    p.set_rules(slow.clone());
    let out = f.show(&fast);
    out.assert_code(1);
    let items = rows(&out);
    assert_eq!(items.len(), 5, "{}", out.stdout);
    for r in &items {
        assert_eq!(r["status"], "unresolved: timeout", "{r}");
    }
    p.set_rules(slow.clone());
    f.assert_import_refused(&fast, "no answer within 1s (2 attempts)");
    p.set_rules(slow);
    let mut args = fast.to_vec();
    args.push("--yes");
    let out = f.run(&[&["pin", &f.release, "-n", &f.ns][..], &args[..]].concat());
    out.assert_code(2);
    assert!(
        out.stderr.contains("no answer within 1s") && out.stderr.contains("nothing was changed"),
        "{}",
        out.stderr
    );
    f.assert_untouched();
}

#[test]
fn head_without_digest_header_falls_back_to_get_and_hashes_the_body() {
    let Some(bed) = Bed::get() else { return };
    let rules = json!([rule(
        manifests(&["HEAD", "GET"]),
        json!({"strip_headers": ["Docker-Content-Digest"]})
    )]);
    let p = Proxy::registry(&bed.reg_token, rules.clone());
    let f = Fixture::new(&bed, &p, "fnohdr");
    // resolve GETs each tag once (it lists platforms) and hashes the body: every manifest kind,
    // index and list included, gets its seeded digest with no header at all.
    assert_resolved(&bed, &f.resolve(&TAGS, &[]), &TAGS);
    assert_eq!(p.count("HEAD", "/manifests/"), 0);
    assert_eq!(p.count("GET", "/manifests/"), 4, "one request per tag");
    // show, import and pin need only the digest: HEAD, and a GET because the HEAD had none.
    p.set_rules(rules.clone());
    with_fault(&p, "show", || assert_show_resolved(&bed, &f.show(&[])));
    let (heads, gets) = (
        p.count("HEAD", "/manifests/"),
        p.count("GET", "/manifests/"),
    );
    assert_eq!(
        (heads, gets),
        (1, 5),
        "show: one HEAD without digest, one GET"
    );
    p.set_rules(rules.clone());
    with_fault(&p, "import", || f.assert_import_ok());
    p.set_rules(rules);
    with_fault(&p, "pin", || f.pin(&[])).assert_code(0);
    f.assert_pinned();
}

#[test]
fn a_body_that_does_not_hash_to_its_digest_header_is_refused() {
    let Some(bed) = Bed::get() else { return };
    let rules = json!([
        rule(
            manifests(&["HEAD"]),
            json!({"strip_headers": ["Docker-Content-Digest"]})
        ),
        rule(manifests(&["GET"]), json!({"corrupt_body": true})),
    ]);
    let p = Proxy::registry(&bed.reg_token, rules.clone());
    let f = Fixture::new(&bed, &p, "fcorrupt");
    let out = f.resolve(&TAGS, &[]);
    out.assert_code(1);
    let seeded = bed.seeded_digest(REPO, TAG);
    assert!(
        out.stderr
            .contains(&format!("but the registry said {seeded}; refusing it")),
        "{}",
        out.stderr
    );
    let items = rows(&out);
    assert_eq!(items.len(), TAGS.len(), "{}", out.stdout);
    for r in &items {
        assert!(r["digest"].is_null(), "{r}");
    }
    p.set_rules(rules.clone());
    assert_show_unresolved(&f, "digest mismatch", "refusing it");
    p.set_rules(rules.clone());
    assert_pin_refused(&f, "refusing it");
    p.set_rules(rules);
    f.assert_import_refused(&[], "refusing it");
}

#[test]
fn a_truncated_body_is_never_taken_for_a_manifest() {
    let Some(bed) = Bed::get() else { return };
    let no_head_digest = rule(
        manifests(&["HEAD"]),
        json!({"strip_headers": ["Docker-Content-Digest"]}),
    );
    // A transfer cut off once: retried, recovers.
    let cut_once = json!([
        no_head_digest.clone(),
        rule(
            manifests(&["GET"]),
            json!({"times": 1, "truncate_body": "half", "keep_length": true})
        ),
    ]);
    let p = Proxy::registry(&bed.reg_token, cut_once.clone());
    let f = Fixture::new(&bed, &p, "ftrunc");
    assert_resolved(&bed, &f.resolve(&[TAG], &[]), &[TAG]);
    assert_eq!(p.count("GET", "/manifests/"), 2);
    p.set_rules(cut_once.clone());
    with_fault(&p, "show", || assert_show_resolved(&bed, &f.show(&[])));

    // Always cut off: a clear "cut short" error after the retries.
    let cut = json!([
        no_head_digest.clone(),
        rule(
            manifests(&["GET"]),
            json!({"truncate_body": "half", "keep_length": true})
        ),
    ]);
    p.set_rules(cut.clone());
    let out = f.resolve(&[TAG], &[]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("the manifest download was cut short")
            && out.stderr.contains("(4 attempts)")
            && out.stderr.contains(&p.host()),
        "{}",
        out.stderr
    );
    p.set_rules(cut.clone());
    assert_pin_refused(&f, "cut short");
    p.set_rules(cut);
    f.assert_import_refused(&[], "cut short");

    // Cut short but announced as complete, digest header kept: the hash check refuses it.
    p.set_rules(json!([
        no_head_digest.clone(),
        rule(manifests(&["GET"]), json!({"truncate_body": "half"})),
    ]));
    let out = f.resolve(&[TAG], &[]);
    out.assert_code(1);
    assert!(out.stderr.contains("refusing it"), "{}", out.stderr);

    // ... and with no digest header anywhere, the body must still be a whole manifest.
    let silent = json!([
        no_head_digest,
        rule(
            manifests(&["GET"]),
            json!({"truncate_body": "half", "strip_headers": ["Docker-Content-Digest"]})
        ),
    ]);
    p.set_rules(silent.clone());
    let out = f.resolve(&[TAG], &[]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("not valid JSON") && out.stderr.contains("cut short or corrupted"),
        "{}",
        out.stderr
    );
    p.set_rules(silent.clone());
    assert_pin_refused(&f, "not valid JSON");
    p.set_rules(silent);
    f.assert_import_refused(&[], "not valid JSON");
    // Faults gone: the same pin completes.
    p.set_rules(json!([]));
    f.pin(&[]).assert_code(0);
    f.assert_pinned();
}

#[test]
fn a_token_expiring_mid_run_is_refreshed_once() {
    let Some(bed) = Bed::get() else { return };
    // The first token is good for two manifest requests, then the registry answers 401 to it.
    // Requests with a valid token are held 0.5 s at the proxy, so the four that go out together
    // (--concurrency 4) all carry the first token: two pass, two are refused at once, and
    // only a refresh shared between them keeps the run at two tokens.
    let rules = json!([
        rule(
            manifests(&["HEAD", "GET"]),
            json!({"expire_token_after": 2, "expire_tokens": 1})
        ),
        rule(manifests(&["HEAD", "GET"]), json!({"delay": 0.5})),
    ]);
    let p = Proxy::registry(&bed.reg_token, rules);
    let f = Fixture::new(&bed, &p, "ftoken");
    let tags = [
        "12.1.0", "12.2.0", "11.0.0", "12.0.0", "11.1.0", "4.2.0", "5.0.0", "5.1.0",
    ];
    // The tags live in a repository of this test's own, so the token server's log (shared by
    // every test) says exactly how many tokens were issued for this run.
    let repo = format!("astro-sha-tests/{}/astro-runtime", f.ns);
    let pushed = bed.push_batch(
        &tags
            .iter()
            .map(|t| (format!("{}/{repo}:{t}", bed.reg_plain), "oci-manifest", *t))
            .collect::<Vec<_>>(),
    );
    let refs: Vec<String> = tags
        .iter()
        .map(|t| format!("{}/{repo}:{t}", p.host()))
        .collect();
    let mut args = vec!["resolve", "-o", "json", "--concurrency", "4"];
    args.extend(refs.iter().map(String::as_str));
    let out = f.run(&args);
    out.assert_code(0);
    let items = rows(&out);
    let got: Vec<&str> = items
        .iter()
        .map(|r| r["digest"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(got, pushed, "{}", out.stdout);
    let issued: Vec<Value> = bed
        .token_log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|t| {
            t["repositories"]
                .as_array()
                .is_some_and(|r| r.iter().any(|n| *n == repo.as_str()))
        })
        .collect();
    assert_eq!(
        issued.len(),
        2,
        "the token server issued one token, then ONE refresh: {issued:#?}"
    );
    let reqs = p.requests();
    // Rule 0 fires only on a request that carries the expired first token.
    let refused = reqs
        .iter()
        .filter(|r| r["rule"] == 0 && r["upstream_status"] == 401)
        .count();
    assert!(
        refused >= 2,
        "two or more requests refused with the same expired token: {reqs:#?}"
    );
    let mut tokens: Vec<&str> = reqs.iter().filter_map(|r| r["token"].as_str()).collect();
    tokens.sort();
    tokens.dedup();
    assert_eq!(
        tokens.len(),
        2,
        "one token, then ONE refresh shared by every refused request: {reqs:#?}"
    );

    // show, import and pin: the very first use is refused; one refresh, and they carry on.
    for cmd in ["show", "import", "pin"] {
        p.set_rules(json!([rule(
            manifests(&["HEAD", "GET"]),
            json!({"expire_token_after": 0, "expire_tokens": 1})
        )]));
        with_fault(&p, cmd, || {
            if cmd == "show" {
                assert_show_resolved(&bed, &f.show(&[]));
            } else if cmd == "import" {
                f.assert_import_ok();
            } else {
                f.pin(&[]).assert_code(0);
            }
        });
        if cmd == "pin" {
            f.assert_pinned();
        }
    }
}
