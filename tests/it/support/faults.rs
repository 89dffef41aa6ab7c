//! Fault injection for the fault-matrix tests: the project's own proxy
//! (`scripts/testbed-lib/faultproxy.py`) in front of a registry or an API server, and a private
//! etcd + kube-apiserver (`ASTRO_SHA_TESTBED_COMPONENTS=cluster scripts/testbed start`) that a
//! test may kill and restart without touching the shared bed.
//!
//! Both are bounded: the proxy exits by itself after its TTL or when the test process is gone,
//! and a private cluster has a watchdog that stops it when the test process is gone.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{repo_root, Out};

/// Seconds a proxy lives at most.
const PROXY_TTL: u32 = 180;

pub struct Proxy {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Proxy {
    /// A proxy in front of a plain-HTTP registry of the bed (`upstream` = `127.0.0.1:5002`).
    pub fn registry(upstream: &str, rules: Value) -> Proxy {
        Proxy::start(&format!("http://{upstream}"), rules, None)
    }

    /// A proxy in front of an API server: TLS terminated with a leaf signed by the CA in
    /// `state_dir/pki` (the bed's dir, or an [`OwnCluster`]'s), re-originated to `upstream`
    /// (`127.0.0.1:6443`) trusting the same CA. When the upstream is down, the client's
    /// connection is reset (as a dead API server behind a TCP proxy looks).
    pub fn apiserver(state_dir: &Path, upstream: &str, rules: Value) -> Proxy {
        Proxy::start(&format!("https://{upstream}"), rules, Some(state_dir))
    }

    fn start(upstream: &str, rules: Value, tls_from: Option<&Path>) -> Proxy {
        let dir = tempfile::Builder::new()
            .prefix("astro-sha-faultproxy-")
            .tempdir()
            .expect("tempdir");
        let rules_path = dir.path().join("rules.json");
        std::fs::write(&rules_path, rules.to_string()).expect("write rules");
        let mut c = Command::new("python3");
        c.arg(repo_root().join("scripts/testbed-lib/faultproxy.py"))
            .args(["--upstream", upstream])
            .arg("--rules")
            .arg(&rules_path)
            .arg("--log")
            .arg(dir.path().join("requests.jsonl"))
            .args(["--ttl", &PROXY_TTL.to_string()])
            .args(["--parent-pid", &std::process::id().to_string()])
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(bed_dir) = tls_from {
            let pki = bed_dir.join("pki");
            c.arg("--tls-ca-cert")
                .arg(pki.join("ca.pem"))
                .arg("--tls-ca-key")
                .arg(pki.join("ca.key"))
                .arg("--upstream-ca")
                .arg(pki.join("ca.pem"))
                .args(["--on-upstream-error", "reset"]);
        }
        let mut child = c.spawn().expect("start faultproxy.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("proxy stdout"))
            .read_line(&mut line)
            .expect("read proxy port");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("faultproxy did not print its port (got {line:?})"));
        Proxy { child, port, dir }
    }

    /// `127.0.0.1:PORT`, to use as a registry host or API server address.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Replaces the rules (the proxy re-reads the file; counters restart).
    pub fn set_rules(&self, rules: Value) {
        let tmp = self.dir.path().join("rules.json.tmp");
        std::fs::write(&tmp, rules.to_string()).expect("write rules");
        std::fs::rename(&tmp, self.dir.path().join("rules.json")).expect("swap rules");
    }

    /// Every request the proxy has seen so far, in log order.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Requests with this method whose path contains `path_part`.
    pub fn count(&self, method: &str, path_part: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| {
                r["method"] == method && r["path"].as_str().is_some_and(|p| p.contains(path_part))
            })
            .count()
    }

    /// Every request the proxy took before this call, each with its log line written (a line
    /// is written after the answer, so a client that has already exited may have one still to
    /// come). A marker request is sent; lines carry a sequence number given when a request
    /// arrives, so once the marker's line and every lower number are in, nothing earlier is
    /// missing. For a plain-HTTP proxy ([`Proxy::registry`]).
    pub fn settled_requests(&self) -> Vec<Value> {
        use std::io::{Read, Write};
        const MARKER: &str = "/astro-sha-test-marker";
        let mut s = std::net::TcpStream::connect(self.host()).expect("connect to the proxy");
        s.write_all(
            format!("GET {MARKER} HTTP/1.1\r\nHost: marker\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .expect("send the marker request");
        let _ = s.read_to_end(&mut Vec::new());
        self.wait_for(60, "the marker request", |r| r["path"] == MARKER);
        let seq = |r: &Value| r["seq"].as_u64().unwrap_or(0);
        let marker = self
            .requests()
            .iter()
            .filter(|r| r["path"] == MARKER)
            .map(seq)
            .max()
            .expect("marker logged");
        self.wait_for(60, "every request before the marker", |_| {
            self.requests().iter().filter(|r| seq(r) < marker).count() as u64 == marker - 1
        });
        self.requests()
            .into_iter()
            .filter(|r| seq(r) < marker)
            .collect()
    }

    /// How many requests the proxy has logged so far: a mark for [`Proxy::fired_since`].
    pub fn mark(&self) -> usize {
        self.requests().len()
    }

    /// The requests logged after `mark` on which a rule fired (a fault was injected).
    pub fn fired_since(&self, mark: usize) -> Vec<Value> {
        self.requests()
            .into_iter()
            .skip(mark)
            .filter(|r| !r["rule"].is_null())
            .collect()
    }

    /// The PATCH requests logged after `mark`, as (the path's last two segments, status), e.g.
    /// `("statefulsets/x-scheduler", "200")`: the order of the writes and what each got.
    pub fn patches_since(&self, mark: usize) -> Vec<(String, String)> {
        self.requests()
            .into_iter()
            .skip(mark)
            .filter(|r| r["method"] == "PATCH")
            .map(|r| {
                let path = r["path"].as_str().unwrap_or("");
                let path = path.split('?').next().unwrap_or("");
                let tail: Vec<&str> = path.rsplit('/').take(2).collect();
                let status = match &r["status"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (format!("{}/{}", tail[1], tail[0]), status)
            })
            .collect()
    }

    /// A file path inside the proxy's directory (e.g. for `hold_until`).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A copy of `kubeconfig` whose clusters point at this proxy.
    pub fn kubeconfig(&self, kubeconfig: &Path) -> PathBuf {
        let text = std::fs::read_to_string(kubeconfig).expect("read kubeconfig");
        let out: String = text
            .lines()
            .map(|l| match l.find("server: https://") {
                Some(i) => format!("{}server: https://{}\n", &l[..i], self.host()),
                None => format!("{l}\n"),
            })
            .collect();
        let path = self.dir.path().join("kubeconfig");
        std::fs::write(&path, out).expect("write kubeconfig");
        path
    }

    /// Waits until a request matching `pred` has been logged (the log line is written when the
    /// proxy has answered it), or panics after `secs`.
    pub fn wait_for(&self, secs: u64, what: &str, pred: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.requests().iter().any(&pred) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("faultproxy never saw {what}; log: {:#?}", self.requests());
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A private etcd + kube-apiserver on free ports with its own state directory (and its own
/// PKI and kubeconfig, made by scripts/testbed), stopped and removed on drop.
pub struct OwnCluster {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub api_port: u16,
    env: Vec<(String, String)>,
    watchdog: Option<Child>,
}

impl OwnCluster {
    pub fn start(name: &str) -> OwnCluster {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "astro-sha-own-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let (etcd, peer, api) = (free_port(), free_port(), free_port());
        let env: Vec<(String, String)> = vec![
            ("ASTRO_SHA_TESTBED_DIR".into(), dir.display().to_string()),
            ("ASTRO_SHA_TESTBED_COMPONENTS".into(), "cluster".into()),
            ("ASTRO_SHA_ETCD_PORT".into(), etcd.to_string()),
            ("ASTRO_SHA_ETCD_PEER_PORT".into(), peer.to_string()),
            ("ASTRO_SHA_APISERVER_PORT".into(), api.to_string()),
        ];
        let watchdog = Command::new("setsid")
            .args([
                "sh",
                "-c",
                r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done; "$2" stop >/dev/null 2>&1; rm -rf "$3""#,
                "watchdog",
            ])
            .arg(std::process::id().to_string())
            .arg(repo_root().join("scripts/testbed"))
            .arg(&dir)
            .envs(env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        let c = OwnCluster {
            kubeconfig: dir.join("kubeconfig"),
            dir,
            api_port: api,
            env,
            watchdog,
        };
        c.testbed("start");
        c
    }

    fn testbed(&self, cmd: &str) -> Out {
        let o = Out::from(
            Command::new(repo_root().join("scripts/testbed"))
                .arg(cmd)
                .envs(self.env.iter().cloned())
                .stdin(Stdio::null())
                .output()
                .expect("run scripts/testbed"),
        );
        assert!(
            o.ok() || cmd == "stop",
            "scripts/testbed {cmd} (private cluster) failed:\n{}",
            o.stderr
        );
        o
    }

    pub fn api_addr(&self) -> String {
        format!("127.0.0.1:{}", self.api_port)
    }

    /// The pid of a running component (`kube-apiserver` or `etcd`), from its pid file.
    pub fn pid(&self, component: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(format!("run/{component}.pid")))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// SIGKILLs a component (`kube-apiserver` or `etcd`) and waits until it is gone.
    pub fn kill(&self, component: &str) {
        let pid = self
            .pid(component)
            .unwrap_or_else(|| panic!("{component} has no pid file"));
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            // a zombie until scripts/testbed's setsid parent reaps it; gone from /proc/PID/cmdline
            if std::fs::read(format!("/proc/{pid}/cmdline")).map_or(true, |c| c.is_empty()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts whatever is not running (idempotent) and waits until it is ready.
    pub fn restart(&self) {
        self.testbed("start");
    }

    pub fn kubectl(&self, args: &[&str]) -> Out {
        Out::from(
            Command::new("kubectl")
                .env("KUBECONFIG", &self.kubeconfig)
                .args(args)
                .stdin(Stdio::null())
                .output()
                .expect("run kubectl"),
        )
    }

    pub fn apply(&self, yaml: &str) {
        let o = super::kubectl_with_input(&self.kubeconfig, &["apply", "-f", "-"], yaml);
        assert!(
            o.ok(),
            "kubectl apply (private cluster) failed: {}",
            o.stderr
        );
    }

    pub fn get_json(&self, args: &[&str]) -> Value {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        let o = self.kubectl(&a);
        assert!(o.ok(), "kubectl get {args:?} failed: {}", o.stderr);
        serde_json::from_str(&o.stdout).expect("kubectl json")
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        self.testbed("stop");
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The Runtime images of a release (containers, init containers, StatefulSets, the pod
/// template) and how many of its objects carry the pin bookkeeping annotation. `get` runs
/// `kubectl get ... -o json` against whichever cluster holds the release.
pub fn release_state(get: impl Fn(&[&str]) -> Value, ns: &str, repo: &str) -> (Vec<String>, usize) {
    let objects = object_states(get, ns, repo);
    let annotated = objects.values().filter(|(_, a)| *a).count();
    let images = objects.into_values().flat_map(|(i, _)| i).collect();
    (images, annotated)
}

/// Each object of a release (`deployment/NAME`, `statefulset/NAME`, `configmap/NAME`) with its
/// Runtime images (containers, init containers, the pod template) and whether it carries the pin
/// bookkeeping annotation: what a rollback must restore, object by object.
pub fn object_states(
    get: impl Fn(&[&str]) -> Value,
    ns: &str,
    repo: &str,
) -> std::collections::BTreeMap<String, (Vec<String>, bool)> {
    let mut out = std::collections::BTreeMap::new();
    for (kind, word) in [
        ("deployments", "deployment"),
        ("statefulsets", "statefulset"),
        ("configmaps", "configmap"),
    ] {
        let list = get(&[kind, "-n", ns]);
        for o in list["items"].as_array().expect("items") {
            let name = o["metadata"]["name"].as_str().expect("name");
            let annotated = o["metadata"]["annotations"]
                .get("astro-sha.github.io/original-images")
                .is_some();
            let mut images = vec![];
            if kind == "configmaps" {
                let text = o["data"]["pod_template_file.yaml"].as_str().unwrap_or("");
                for line in text.lines() {
                    if let Some(rest) = line.trim().strip_prefix("image: ") {
                        images.push(rest.split_whitespace().next().unwrap_or("").to_string());
                    }
                }
            } else {
                let spec = &o["spec"]["template"]["spec"];
                for key in ["initContainers", "containers"] {
                    for c in spec[key].as_array().into_iter().flatten() {
                        let img = c["image"].as_str().expect("image");
                        if img.contains(repo) {
                            images.push(img.to_string());
                        }
                    }
                }
            }
            if !images.is_empty() || annotated {
                out.insert(format!("{word}/{name}"), (images, annotated));
            }
        }
    }
    out
}
