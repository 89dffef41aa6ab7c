//! `kubectl astro-sha import` against the real bed: the fixture catalog (>=150 entries) from a
//! file, from HTTP and from stdin, a re-pushed tag, a concurrent writer, the size limit, RBAC,
//! dry runs and bad sources. Each test works in namespaces of its own (`--platform-namespace`)
//! and never writes to the shared `astronomer` fixture.

use crate::support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{repo_root, Bed};
use serde_json::Value;

const CM: &str = "astro-runtime-base-images";
const KEY: &str = "astro_runtime_releases.json";

fn mirrors(bed: &Bed) -> String {
    format!(
        "quay.io={t},astrocrpublic.azurecr.io={t}",
        t = bed.reg_token
    )
}

fn fixture_path(bed: &Bed) -> PathBuf {
    repo_root().join(
        bed.seed["catalog"]
            .as_str()
            .unwrap_or("tests/fixtures/catalog/runtime-releases.json"),
    )
}

fn fixture_text(bed: &Bed) -> String {
    std::fs::read_to_string(fixture_path(bed)).expect("read fixture catalog")
}

/// The fixture catalog as the import must store it: every entry the bed pushed gets
/// `"sha256": <seeded digest>` appended; the ones seed.json lists as missing get nothing.
/// Pretty-printed the way the ConfigMap holds it, so comparing strings compares key order too.
fn expected_catalog(bed: &Bed) -> (String, usize) {
    let mut cat: Value = serde_json::from_str(&fixture_text(bed)).expect("fixture parses");
    let mut with_digest = 0;
    for section in ["runtimeVersions", "runtimeVersionsV3"] {
        let repo = bed.seed["repositories"][section]
            .as_str()
            .expect("seed repositories")
            .to_string();
        for (tag, entry) in cat[section].as_object_mut().expect("section").iter_mut() {
            let seeded = bed.seed["images"]
                .as_array()
                .expect("images")
                .iter()
                .find(|i| i["repository"] == repo.as_str() && i["tag"] == tag.as_str());
            if let Some(i) = seeded {
                entry
                    .as_object_mut()
                    .expect("entry")
                    .insert("sha256".into(), i["digest"].clone());
                with_digest += 1;
            }
        }
    }
    let mut s = serde_json::to_string_pretty(&cat).expect("render");
    s.push('\n');
    (s, with_digest)
}

fn configmap(bed: &Bed, ns: &str) -> Option<Value> {
    let o = bed.kubectl(&["-n", ns, "get", "configmap", CM, "-o", "json"]);
    if !o.ok() {
        assert!(o.stderr.contains("NotFound"), "kubectl get: {}", o.stderr);
        return None;
    }
    Some(serde_json::from_str(&o.stdout).expect("configmap json"))
}

fn catalog_text(cm: &Value) -> String {
    cm["data"][KEY]
        .as_str()
        .expect("data key astro_runtime_releases.json")
        .to_string()
}

fn catalog_of(bed: &Bed, ns: &str) -> Value {
    let cm = configmap(bed, ns).expect("configmap exists");
    serde_json::from_str(&catalog_text(&cm)).expect("catalog json")
}

/// A scripted HTTP server on loopback: answers each connection with the next response (the last
/// one repeats), counting requests.
struct Server {
    url: String,
    hits: Arc<AtomicUsize>,
}

enum Reply {
    Ok(String),
    Status(u16),
    Hang,
}

fn serve(replies: Vec<Reply>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/astronomer-runtime",
        listener.local_addr().expect("addr")
    );
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let n = h.fetch_add(1, Ordering::SeqCst);
            let reply = &replies[n.min(replies.len() - 1)];
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if line == "\r\n" {
                    break;
                }
                line.clear();
            }
            let resp = match reply {
                Reply::Ok(body) => format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                ),
                Reply::Status(code) => format!(
                    "HTTP/1.1 {code} Oops\r\nContent-Length: 4\r\nConnection: close\r\n\r\noops"
                ),
                Reply::Hang => {
                    // No answer at all: hold the connection until the client gives up and
                    // closes it (at most a minute), so only a client-side timeout ends it.
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
                    let _ = stream.read(&mut [0u8; 1]);
                    continue;
                }
            };
            let _ = stream.write_all(resp.as_bytes());
        }
    });
    Server { url, hits }
}

fn import(bed: &Bed, ns: &str, extra: &[&str]) -> support::Out {
    let m = mirrors(bed);
    let mut args = vec![
        "import",
        "--platform-namespace",
        ns,
        "--registry-mirror",
        m.as_str(),
        "--yes",
    ];
    args.extend_from_slice(extra);
    bed.run(&args)
}

#[test]
fn fixture_catalog_from_a_file_and_over_http_gets_the_seeded_digests() {
    let Some(bed) = support::Bed::get() else {
        return;
    };
    let (expected, with_digest) = expected_catalog(&bed);
    let entries = {
        let v: Value = serde_json::from_str(&fixture_text(&bed)).unwrap();
        v["runtimeVersions"].as_object().unwrap().len()
            + v["runtimeVersionsV3"].as_object().unwrap().len()
    };
    assert!(entries >= 150, "fixture has {entries} entries");
    let missing = bed.seed["missing"].as_array().unwrap().len();
    assert_eq!(with_digest + missing, entries);
    let path = fixture_path(&bed);

    // From a file.
    let ns = bed.namespace("imp");
    let o = import(
        &bed,
        &ns,
        &[
            "--source",
            path.to_str().unwrap(),
            "--include-yanked",
            "--allow-missing",
        ],
    );
    o.assert_code(0);
    let cm = configmap(&bed, &ns).expect("configmap created");
    assert_eq!(
        catalog_text(&cm),
        expected,
        "ConfigMap = source + seeded digests, key order kept"
    );
    assert_eq!(
        cm["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "astro-sha"
    );
    let ann = &cm["metadata"]["annotations"];
    assert_eq!(
        ann["astro-sha.astronomer.io/source"],
        path.to_str().unwrap()
    );
    assert_eq!(ann["astro-sha.astronomer.io/versions"], entries.to_string());
    assert_eq!(
        ann["astro-sha.astronomer.io/digests"],
        with_digest.to_string()
    );
    assert!(ann["astro-sha.astronomer.io/imported-at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    let summary = format!(
        "imported {entries} versions: {with_digest} new, 0 unchanged, 0 moved, {missing} missing -> configmap {ns}/{CM}"
    );
    assert!(o.stderr.contains(&summary), "{}", o.stderr);
    assert!(o.stdout.starts_with("VERSION "), "{}", o.stdout);

    // Over HTTP, the first answer a 503 (retried), as JSON output.
    let ns2 = bed.namespace("imp");
    let server = serve(vec![Reply::Status(503), Reply::Ok(fixture_text(&bed))]);
    let o = import(
        &bed,
        &ns2,
        &[
            "--source",
            &server.url,
            "--include-yanked",
            "--allow-missing",
            "-o",
            "json",
        ],
    );
    o.assert_code(0);
    assert_eq!(server.hits.load(Ordering::SeqCst), 2, "one retry after 503");
    assert_eq!(catalog_text(&configmap(&bed, &ns2).unwrap()), expected);
    let rep = o.json();
    assert_eq!(rep["summary"]["new"], with_digest);
    assert_eq!(rep["summary"]["missing"], missing);
    assert_eq!(rep["written"], true);
    let item = rep["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["version"] == "4.2.1")
        .expect("4.2.1 reported");
    assert_eq!(
        item["digest"],
        bed.seeded_digest("astronomer/astro-runtime", "4.2.1")
    );
    assert_eq!(item["image"], "quay.io/astronomer/astro-runtime:4.2.1");
    assert_eq!(
        item["registrySource"],
        format!("{}/astronomer/astro-runtime:4.2.1", bed.reg_token)
    );

    // A second run changes nothing and says so.
    let o = import(
        &bed,
        &ns2,
        &[
            "--source",
            &server.url,
            "--include-yanked",
            "--allow-missing",
        ],
    );
    o.assert_code(0);
    assert!(
        o.stderr.contains(&format!(
            "{with_digest} unchanged, 0 moved, {missing} missing"
        )),
        "{}",
        o.stderr
    );
    assert_eq!(catalog_text(&configmap(&bed, &ns2).unwrap()), expected);
}

#[test]
fn stdin_source_and_output_file_touch_no_cluster() {
    let Some(bed) = support::Bed::get() else {
        return;
    };
    let (expected, _) = expected_catalog(&bed);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("astro_runtime_releases.json");
    let m = mirrors(&bed);
    let o = bed.run_with(
        &[
            "import",
            "--source",
            "-",
            "--include-yanked",
            "--allow-missing",
            "--registry-mirror",
            &m,
            "--output-file",
            out.to_str().unwrap(),
        ],
        |c| {
            // No cluster at all: a kubeconfig that does not exist.
            c.env("KUBECONFIG", dir.path().join("no-such-kubeconfig"))
                .stdin(Stdio::from(
                    std::fs::File::open(fixture_path(&bed)).unwrap(),
                ));
        },
    );
    o.assert_code(0);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), expected);
    assert!(
        o.stderr.contains(&format!("-> file {}", out.display())),
        "{}",
        o.stderr
    );
}

#[test]
fn missing_tags_are_listed_and_nothing_is_written() {
    let Some(bed) = support::Bed::get() else {
        return;
    };
    let ns = bed.namespace("imp");
    let path = fixture_path(&bed);
    let o = import(&bed, &ns, &["--source", path.to_str().unwrap()]);
    o.assert_code(1);
    let fixture: Value = serde_json::from_str(&fixture_text(&bed)).unwrap();
    let mut listed = 0;
    for m in bed.seed["missing"].as_array().unwrap() {
        let (repo, tag) = (
            m["repository"].as_str().unwrap(),
            m["tag"].as_str().unwrap(),
        );
        let (section, public) = if repo == "runtime" {
            ("runtimeVersionsV3", "astrocrpublic.azurecr.io/runtime")
        } else {
            ("runtimeVersions", "quay.io/astronomer/astro-runtime")
        };
        let yanked = fixture[section][tag]["metadata"]["yanked"] == true;
        let line = format!("missing: {public}:{tag} (");
        // Yanked versions are not imported by default, so not looked up either.
        assert_eq!(o.stderr.contains(&line), !yanked, "{line}\n{}", o.stderr);
        listed += usize::from(!yanked);
    }
    assert!(listed > 0);
    assert!(
        o.stderr.contains(&format!(
            "tags are missing from the registry (listed above); nothing written to configmap {ns}/{CM}"
        )),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("--allow-missing"));
    assert!(configmap(&bed, &ns).is_none(), "nothing written");
}

/// A small catalog whose Airflow 2 entries live in `repo` (pushed by the test).
fn small_catalog(tags: &[&str]) -> String {
    let entries: Vec<String> = tags
        .iter()
        .map(|t| {
            format!(
                r#""{t}": {{"metadata": {{"airflowVersion": "2.11.0", "channel": "stable", "yanked": false, "x-note": "{t}"}}, "migrations": {{"airflowDatabase": false}}}}"#
            )
        })
        .collect();
    format!(
        "{{\"version\": \"1.0\", \"runtimeVersions\": {{{}}}, \"x-extra\": [1, 2]}}",
        entries.join(", ")
    )
}

struct Repo {
    ns: support::TestNamespace,
    repo: String,
    file: PathBuf,
    _dir: tempfile::TempDir,
    /// The digest each tag was pushed with.
    digests: std::collections::BTreeMap<String, String>,
}

fn repo_with_catalog(bed: &Bed, tags: &[&str]) -> Repo {
    let ns = bed.namespace("imp");
    let repo = format!("{}/{ns}/astro-runtime", bed.reg_plain);
    let mut digests = std::collections::BTreeMap::new();
    for t in tags {
        let d = bed.push(&format!("{repo}:{t}"), "oci-manifest", "salt1");
        digests.insert(t.to_string(), d);
    }
    let dir = tempfile::tempdir().unwrap();
    let file = support::write_file(dir.path(), "catalog.json", &small_catalog(tags));
    Repo {
        ns,
        repo,
        file,
        _dir: dir,
        digests,
    }
}

fn import_repo(bed: &Bed, r: &Repo, extra: &[&str]) -> support::Out {
    let mut args = vec![
        "import",
        "--platform-namespace",
        &r.ns,
        "--source",
        r.file.to_str().unwrap(),
        "--airflow2-repository",
        &r.repo,
        "--yes",
    ];
    args.extend_from_slice(extra);
    bed.run(&args)
}

#[test]
fn a_re_pushed_tag_is_reported_moved_and_not_overwritten() {
    let Some(bed) = support::Bed::get() else {
        return;
    };
    let r = repo_with_catalog(&bed, &["1.0.0", "1.1.0"]);
    let first = bed.push(&format!("{}:1.0.0", r.repo), "oci-manifest", "salt1");
    import_repo(&bed, &r, &[]).assert_code(0);
    assert_eq!(
        catalog_of(&bed, &r.ns)["runtimeVersions"]["1.0.0"]["sha256"],
        first
    );

    let second = bed.push(&format!("{}:1.0.0", r.repo), "oci-manifest", "salt2");
    assert_ne!(first, second);
    let o = import_repo(&bed, &r, &["-o", "json"]);
    o.assert_code(1);
    let rep = o.json();
    let item = &rep["items"][0];
    assert_eq!(item["version"], "1.0.0");
    assert_eq!(item["change"], "moved");
    assert_eq!(item["previous"], first);
    assert_eq!(item["registry"], second);
    assert_eq!(item["digest"], first, "the recorded digest is kept");
    assert_eq!(rep["items"][1]["change"], "unchanged");
    assert!(o.stderr.contains("--accept-moved"), "{}", o.stderr);
    assert!(o.stderr.contains("1 moved"), "{}", o.stderr);
    assert_eq!(
        catalog_of(&bed, &r.ns)["runtimeVersions"]["1.0.0"]["sha256"],
        first,
        "not overwritten"
    );

    // --only-missing does not ask the registry about versions that have a digest.
    let o = import_repo(&bed, &r, &["--only-missing", "-o", "json"]);
    o.assert_code(0);
    let rep = o.json();
    assert_eq!(rep["items"][0]["change"], "unchanged");
    assert_eq!(rep["items"][0]["registry"], Value::Null);
    assert_eq!(rep["items"][0]["digest"], first);

    // The table says it too.
    let o = import_repo(&bed, &r, &[]);
    o.assert_code(1);
    let row = o.stdout.lines().find(|l| l.starts_with("1.0.0 ")).unwrap();
    assert!(row.trim_end().ends_with("moved"), "{row}");

    let o = import_repo(&bed, &r, &["--accept-moved"]);
    o.assert_code(0);
    assert_eq!(
        catalog_of(&bed, &r.ns)["runtimeVersions"]["1.0.0"]["sha256"],
        second
    );
}

/// `kubectl proxy` (plain HTTP on loopback, the admin's credentials) stopped when dropped.
struct KubectlProxy {
    child: Child,
    port: u16,
}

impl KubectlProxy {
    fn start(bed: &Bed) -> KubectlProxy {
        let mut child = Command::new("kubectl")
            .env("KUBECONFIG", &bed.kubeconfig)
            .args(["proxy", "--port=0", "--address=127.0.0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl proxy");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("kubectl proxy said {line:?}"));
        KubectlProxy { child, port }
    }
}

impl Drop for KubectlProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Log = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

/// An HTTP proxy in front of `kubectl proxy` that records every request and calls `hook` before
/// forwarding it: the test's way to act at an exact moment of the plugin's conversation with
/// the API server.
fn intercept(upstream: u16, hook: impl Fn(&str, &str) + Send + Sync + 'static) -> (u16, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log: Log = Arc::default();
    let l = log.clone();
    let hook = Arc::new(hook);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (l, hook) = (l.clone(), hook.clone());
            std::thread::spawn(move || {
                let _ = relay(stream, upstream, &l, hook.as_ref());
            });
        }
    });
    (port, log)
}

fn relay(
    client: TcpStream,
    upstream: u16,
    log: &Log,
    hook: &(impl Fn(&str, &str) + ?Sized),
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = vec![];
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            if h == "\r\n" || h.is_empty() {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if !(lower.starts_with("host:")
                || lower.starts_with("connection:")
                || lower.starts_with("content-length:"))
            {
                headers.push(h);
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        log.lock()
            .unwrap()
            .push((method.clone(), path.clone(), body.clone()));
        hook(&method, &path);
        // HTTP/1.0 upstream: the answer is never chunked and ends when the connection closes.
        let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
        write!(
            up,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{upstream}\r\nContent-Length: {length}\r\n"
        )?;
        for h in &headers {
            up.write_all(h.as_bytes())?;
        }
        up.write_all(b"\r\n")?;
        up.write_all(&body)?;
        let mut resp = vec![];
        up.read_to_end(&mut resp)?;
        let split = resp
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(resp.len());
        let head = String::from_utf8_lossy(&resp[..split]).to_string();
        let payload = resp.get(split + 4..).unwrap_or(&[]);
        let mut out = String::new();
        for (i, line) in head.split("\r\n").enumerate() {
            let lower = line.to_ascii_lowercase();
            if i == 0 {
                out.push_str(&line.replacen("HTTP/1.0", "HTTP/1.1", 1));
            } else if lower.starts_with("content-length:")
                || lower.starts_with("connection:")
                || lower.starts_with("transfer-encoding:")
            {
                continue;
            } else {
                out.push_str(line);
            }
            out.push_str("\r\n");
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", payload.len()));
        client.write_all(out.as_bytes())?;
        client.write_all(payload)?;
    }
}

fn proxy_kubeconfig(dir: &std::path::Path, port: u16) -> PathBuf {
    support::write_file(
        dir,
        "kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: p\n  cluster:\n    server: http://127.0.0.1:{port}\nusers:\n- name: p\n  user: {{}}\ncontexts:\n- name: p\n  context:\n    cluster: p\n    user: p\ncurrent-context: p\n"
        ),
    )
}

/// Adds a version to the ConfigMap's catalog the way another writer (a person with kubectl)
/// would, bumping its resourceVersion.
fn concurrent_edit(bed: &Bed, ns: &str, tag: &str) {
    let mut cm = configmap(bed, ns).expect("configmap");
    let mut cat: Value = serde_json::from_str(&catalog_text(&cm)).unwrap();
    cat["runtimeVersions"][tag] = serde_json::json!({
        "metadata": {"channel": "hand-added"},
        "sha256": format!("sha256:{}", "7".repeat(64))
    });
    cm["data"][KEY] = Value::String(serde_json::to_string_pretty(&cat).unwrap());
    let o = bed.kubectl_stdin(&["replace", "-f", "-"], &cm.to_string());
    assert!(o.ok(), "concurrent edit failed: {}", o.stderr);
}

#[test]
fn a_concurrent_writers_entry_survives_the_409() {
    let Some(bed) = support::Bed::get() else {
        return;
    };
    let r = repo_with_catalog(&bed, &["1.0.0", "1.1.0"]);
    // The ConfigMap exists with 1.0.0 only, so the run below updates it.
    import_repo(&bed, &r, &["--versions", "1.0.0"]).assert_code(0);

    let proxy = KubectlProxy::start(&bed);
    let cm_path = format!("/api/v1/namespaces/{}/configmaps/{CM}", r.ns);
    let edited = Arc::new(AtomicUsize::new(0));
    let (bed2, ns2, p2, e2) = (
        Bed::get().unwrap(),
        r.ns.name.clone(),
        cm_path.clone(),
        edited.clone(),
    );
    let (port, log) = intercept(proxy.port, move |method, path| {
        // Between the plugin's read and its first write, someone else writes.
        if method == "PUT" && path.starts_with(&p2) && e2.fetch_add(1, Ordering::SeqCst) == 0 {
            concurrent_edit(&bed2, &ns2, "77.0.0");
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let kc = proxy_kubeconfig(dir.path(), port);
    let o = import_repo(
        &bed,
        &r,
        &["--kubeconfig", kc.to_str().unwrap(), "--versions", "1.1.0"],
    );
    o.assert_code(0);
    assert!(
        o.stderr.contains("changed while this import ran"),
        "{}",
        o.stderr
    );
    let cat = catalog_of(&bed, &r.ns);
    let rv = cat["runtimeVersions"].as_object().unwrap();
    assert_eq!(
        rv["77.0.0"]["metadata"]["channel"], "hand-added",
        "their entry survives"
    );
    assert_eq!(rv["1.1.0"]["sha256"], r.digests["1.1.0"], "ours is written");
    assert_eq!(
        rv["1.0.0"]["sha256"], r.digests["1.0.0"],
        "earlier import kept"
    );

    let log = log.lock().unwrap();
    let puts: Vec<&(String, String, Vec<u8>)> = log
        .iter()
        .filter(|(m, p, _)| m == "PUT" && p.starts_with(&cm_path))
        .collect();
    assert_eq!(puts.len(), 2, "a 409, then a write after re-reading");
    let rvs: Vec<String> = puts
        .iter()
        .map(|(_, _, b)| {
            let v: Value = serde_json::from_slice(b).unwrap();
            v["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_ne!(
        rvs[0], rvs[1],
        "each write carries the resourceVersion it read"
    );
    let gets = log
        .iter()
        .filter(|(m, p, _)| m == "GET" && p.starts_with(&cm_path))
        .count();
    assert_eq!(gets, 2, "read, then re-read after the conflict");
}

#[test]
fn a_catalog_over_the_configmap_limit_is_refused_before_writing() {
    let Some(bed) = support::Bed::get() else {
        return;
    };
    let r = repo_with_catalog(&bed, &["1.0.0"]);
    import_repo(&bed, &r, &[]).assert_code(0);
    let before = configmap(&bed, &r.ns).unwrap();

    let blob = "x".repeat(400 * 1024);
    let big = format!(
        "{{\"runtimeVersions\": {{\"1.0.0\": {{\"metadata\": {{\"channel\": \"stable\"}}, \"x-blob\": \"{blob}\"}}, \"2.0.0\": {{\"metadata\": {{\"channel\": \"stable\"}}, \"x-blob\": \"{blob}\"}}, \"3.0.0\": {{\"metadata\": {{\"channel\": \"stable\"}}, \"x-blob\": \"{blob}\"}}}}}}"
    );
    std::fs::write(&r.file, big).unwrap();
    let o = import_repo(&bed, &r, &["--allow-missing"]);
    o.assert_code(2);
    assert!(
        o.stderr
            .contains("over the 1 MiB (1048576 bytes) a ConfigMap may hold; nothing was written"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("--min-version"), "{}", o.stderr);
    let after = configmap(&bed, &r.ns).unwrap();
    assert_eq!(
        before["metadata"]["resourceVersion"], after["metadata"]["resourceVersion"],
        "untouched"
    );
    // And a first import of it creates nothing.
    let ns = bed.namespace("imp");
    let o = bed.run(&[
        "import",
        "--platform-namespace",
        &ns,
        "--source",
        r.file.to_str().unwrap(),
        "--airflow2-repository",
        &r.repo,
        "--allow-missing",
        "--yes",
    ]);
    o.assert_code(2);
    assert!(configmap(&bed, &ns).is_none());
}

/// docs/rbac-import.yaml, bound to `user` in `ns`.
fn documented_role(ns: &str, user: &str) -> String {
    let doc = std::fs::read_to_string(repo_root().join("docs/rbac-import.yaml")).unwrap();
    assert!(doc.contains("namespace: astronomer") && doc.contains("name: jane@example.com"));
    doc.replace("namespace: astronomer", &format!("namespace: {ns}"))
        .replace("name: jane@example.com", &format!("name: {user}"))
}

#[test]
fn the_documented_least_privilege_role_is_enough() {
    let Some(bed) = support::Bed::get() else {
        return;
    };
    let r = repo_with_catalog(&bed, &["1.0.0", "1.1.0"]);
    bed.apply(&documented_role(&r.ns, "limited1"));
    // Create, then update.
    for (versions, code) in [("1.0.0", 0), ("1.0.0,1.1.0", 0)] {
        let o = import_repo(
            &bed,
            &r,
            &["--context", "testbed-limited1", "--versions", versions],
        );
        o.assert_code(code);
        assert!(
            o.stderr.contains("no Houston Deployment"),
            "may list deployments: {}",
            o.stderr
        );
    }
    let cat = catalog_of(&bed, &r.ns);
    assert_eq!(
        cat["runtimeVersions"]["1.0.0"]["sha256"],
        r.digests["1.0.0"]
    );
    assert_eq!(
        cat["runtimeVersions"]["1.1.0"]["sha256"],
        r.digests["1.1.0"]
    );
    // The role is namespaced: the same user cannot import elsewhere.
    let other_guard = bed.namespace("imp");
    let other = other_guard.name.clone();
    let o = import_repo(
        &bed,
        &Repo {
            ns: other_guard,
            repo: r.repo.clone(),
            file: r.file.clone(),
            _dir: tempfile::tempdir().unwrap(),
            digests: r.digests.clone(),
        },
        &["--context", "testbed-limited1"],
    );
    o.assert_code(2);
    assert!(
        o.stderr
            .contains(&format!("cannot get configmaps in namespace \"{other}\"")),
        "{}",
        o.stderr
    );
}

#[test]
fn the_no_rights_user_fails_cleanly() {
    let Some(bed) = support::Bed::get() else {
        return;
    };
    let r = repo_with_catalog(&bed, &["1.0.0"]);
    let o = import_repo(&bed, &r, &["--context", "testbed-norights"]);
    o.assert_code(2);
    assert!(
        o.stderr.contains(&format!(
            "forbidden: cannot get configmaps in namespace \"{}\"",
            r.ns
        )),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr
            .contains("hint: ask a cluster admin for a Role granting `get` on `configmaps`"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("panicked"));
    // Without a namespace, finding Houston needs a cluster-wide list: named too.
    let o = bed.run(&[
        "import",
        "--context",
        "testbed-norights",
        "--source",
        r.file.to_str().unwrap(),
    ]);
    o.assert_code(2);
    assert!(
        o.stderr.contains("forbidden: cannot list deployments.apps"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("--platform-namespace"), "{}", o.stderr);
    assert!(configmap(&bed, &r.ns).is_none());
}

#[test]
fn dry_runs_write_nothing() {
    let Some(bed) = support::Bed::get() else {
        return;
    };
    let r = repo_with_catalog(&bed, &["1.0.0", "1.1.0"]);
    for mode in ["--dry-run=server", "--dry-run=client", "--dry-run"] {
        let o = import_repo(&bed, &r, &[mode]);
        o.assert_code(0);
        assert!(
            o.stderr.contains("would import 2 versions: 2 new"),
            "{mode}: {}",
            o.stderr
        );
        assert!(
            configmap(&bed, &r.ns).is_none(),
            "{mode} created the ConfigMap"
        );
    }
    import_repo(&bed, &r, &["--versions", "1.0.0"]).assert_code(0);
    let before = configmap(&bed, &r.ns).unwrap();
    let o = import_repo(&bed, &r, &["--dry-run=server", "-o", "json"]);
    o.assert_code(0);
    let rep = o.json();
    assert_eq!(rep["dryRun"], "server");
    assert_eq!(rep["written"], false);
    assert!(
        o.stderr.contains("accepted by the API server"),
        "{}",
        o.stderr
    );
    let after = configmap(&bed, &r.ns).unwrap();
    assert_eq!(before, after, "server dry run stored nothing");
    assert!(catalog_of(&bed, &r.ns)["runtimeVersions"]
        .get("1.1.0")
        .is_none());
}

#[test]
fn bad_sources_change_nothing() {
    let Some(bed) = support::Bed::get() else {
        return;
    };
    let ns = bed.namespace("imp");
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        support::write_file(dir.path(), name, text)
            .to_str()
            .unwrap()
            .to_string()
    };
    let cases: Vec<(String, Vec<&str>, &str)> = vec![
        (
            file(
                "malformed.json",
                "{\n  \"runtimeVersions\": {\n    \"13.9.0\": {,}\n  }\n}",
            ),
            vec![],
            "is not valid JSON: key must be a string at line 3 column 16",
        ),
        (file("empty.json", "\n"), vec![], "is empty"),
        (
            file("other.json", r#"{"version": "1.0", "releases": []}"#),
            vec![],
            "has neither runtimeVersions (Airflow 2) nor runtimeVersionsV3 (Airflow 3)",
        ),
        (
            dir.path().join("absent.json").to_str().unwrap().to_string(),
            vec![],
            "cannot read catalog file",
        ),
        (
            file("ok.json", &small_catalog(&["1.0.0"])),
            vec!["--versions", "9.9.9"],
            "--versions: 9.9.9 not in the catalog",
        ),
        (
            file("ok2.json", &small_catalog(&["1.0.0"])),
            vec!["--min-version", "3.1"],
            "is not a Runtime version",
        ),
    ];
    for (source, extra, want) in &cases {
        let mut args = vec!["import", "--platform-namespace", &ns, "--source", source];
        args.extend_from_slice(extra);
        let o = bed.run(&args);
        o.assert_code(2);
        assert!(
            o.stderr.contains(want),
            "{source}: want {want:?}\n{}",
            o.stderr
        );
    }

    let not_found = serve(vec![Reply::Status(404)]);
    let o = bed.run(&[
        "import",
        "--platform-namespace",
        &ns,
        "--source",
        &not_found.url,
    ]);
    o.assert_code(2);
    assert!(o.stderr.contains("answered HTTP 404"), "{}", o.stderr);
    assert!(o.stderr.contains("--source FILE"), "{}", o.stderr);
    assert_eq!(
        not_found.hits.load(Ordering::SeqCst),
        1,
        "a 404 is not retried"
    );

    let failing = serve(vec![Reply::Status(500)]);
    let o = bed.run(&[
        "import",
        "--platform-namespace",
        &ns,
        "--source",
        &failing.url,
        "--source-retries",
        "2",
    ]);
    o.assert_code(2);
    assert!(o.stderr.contains("answered HTTP 500"), "{}", o.stderr);
    assert!(o.stderr.contains("(after 3 attempts)"), "{}", o.stderr);
    assert_eq!(failing.hits.load(Ordering::SeqCst), 3);

    let hanging = serve(vec![Reply::Hang]);
    let o = bed.run(&[
        "import",
        "--platform-namespace",
        &ns,
        "--source",
        &hanging.url,
        "--source-timeout",
        "1s",
        "--source-retries",
        "0",
    ]);
    o.assert_code(2);
    assert!(o.stderr.contains("no answer within 1s"), "{}", o.stderr);
    assert!(o.stderr.contains("--source-timeout"), "{}", o.stderr);
    assert_eq!(hanging.hits.load(Ordering::SeqCst), 1, "--source-retries 0");

    // A missing platform namespace is named.
    let o = bed.run(&[
        "import",
        "--platform-namespace",
        "imp-no-such-namespace",
        "--source",
        &cases[4].0,
    ]);
    o.assert_code(2);
    assert!(
        o.stderr
            .contains("platform namespace \"imp-no-such-namespace\" not found"),
        "{}",
        o.stderr
    );
    assert!(configmap(&bed, &ns).is_none(), "nothing written");
}

#[test]
fn finds_houston_and_says_it_does_not_mount_the_configmap() {
    let Some(bed) = support::Bed::get() else {
        return;
    };
    let platform = bed.seed["platform"]["namespace"]
        .as_str()
        .unwrap_or("astronomer")
        .to_string();
    let had = configmap(&bed, &platform);
    let r = repo_with_catalog(&bed, &["1.0.0"]);
    let houstons = bed.get_json(&["deployments", "-A", "-l", "component=houston"]);
    let mut namespaces: Vec<String> = houstons["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["metadata"]["namespace"].as_str().unwrap().to_string())
        .collect();
    namespaces.sort();
    namespaces.dedup();
    // Read-only against the shared platform: discovery by label, then a client-side dry run.
    let args = [
        "import",
        "--dry-run=client",
        "--source",
        r.file.to_str().unwrap(),
        "--airflow2-repository",
        &r.repo,
    ];
    let o = bed.run(&args);
    if namespaces.len() > 1 {
        // Other tests sharing the bed may run a Houston look-alike: then discovery must refuse
        // to guess, naming them, and the wiring check is exercised with the namespace given.
        o.assert_code(2);
        assert!(
            o.stderr.contains(&format!(
                "Houston Deployments (label component=houston) in several namespaces: {}",
                namespaces.join(", ")
            )),
            "{}",
            o.stderr
        );
        assert!(o.stderr.contains("--platform-namespace"), "{}", o.stderr);
    }
    let o = if namespaces.len() > 1 {
        let mut a = args.to_vec();
        a.extend_from_slice(&["--platform-namespace", &platform]);
        bed.run(&a)
    } else {
        o
    };
    o.assert_code(0);
    assert!(
        o.stderr.contains(&format!("-> configmap {platform}/{CM}")),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains(&format!(
            "Houston (deployment {platform}/astronomer-houston) does not mount configmap {CM}"
        )),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("kubectl astro-sha enable"),
        "{}",
        o.stderr
    );
    assert_eq!(configmap(&bed, &platform), had, "dry run wrote nothing");
}

/// The catalog download is built by the registry's one client construction (issue 19): the
/// roots of --registry-ca as the resolver read them, and its redirect rule. A bad --registry-ca
/// stops an https source before any connection, with the error a registry lookup gives; the
/// bed's CA lets an https source through; a redirect from HTTPS to plain HTTP is refused as it
/// is for a registry (the download used to follow it). Nothing is written in any case.
#[test]
fn the_catalog_download_uses_the_registry_client_rules() {
    let Some(bed) = Bed::get() else { return };
    let ns = bed.namespace("imp");
    let dir = tempfile::tempdir().unwrap();

    let bad = support::write_file(dir.path(), "bad-ca.pem", "not a certificate\n");
    let server = serve(vec![Reply::Ok(small_catalog(&["1.0.0"]))]);
    let https = server.url.replace("http://", "https://");
    let o = bed.run(&[
        "import",
        "--platform-namespace",
        &ns,
        "--source",
        &https,
        "--registry-ca",
        bad.to_str().unwrap(),
        "--yes",
    ]);
    o.assert_code(2);
    assert!(
        o.stderr
            .contains(&format!("--registry-ca {}", bad.display())),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("PEM file"), "{}", o.stderr);
    assert_eq!(server.hits.load(Ordering::SeqCst), 0, "no connection made");

    // An https source that redirects to plain HTTP (the hostile server's /token, a leaf signed
    // by the bed's CA, which --registry-ca trusts): refused, the plain-HTTP target never asked.
    let h = support::hostile::Hostile::start(&bed, "refresh-redirect", "bed", "none", &[]);
    let url = format!("https://{}/token", h.host());
    let o = bed.run(&[
        "import",
        "--platform-namespace",
        &ns,
        "--source",
        &url,
        "--source-retries",
        "0",
        "--yes",
    ]);
    o.assert_code(2);
    assert!(
        o.stderr
            .contains("refusing a redirect from HTTPS to plain HTTP"),
        "{}",
        o.stderr
    );
    assert!(
        h.aux_requests().is_empty(),
        "the plain-HTTP target was contacted: {:?}",
        h.aux_requests()
    );
    assert!(
        h.requests().iter().any(|r| r["port"] == "registry"),
        "the https source was reached through the bed's CA"
    );
    assert!(configmap(&bed, &ns).is_none(), "nothing written");
}
