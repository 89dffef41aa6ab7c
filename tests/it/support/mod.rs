//! Shared harness for integration tests against the local test bed (`scripts/testbed up`).
//!
//! Every test runs the real binary against the real kube-apiserver and distribution registries.
//! When the bed is not running, a test is skipped with a message — except under CI (`CI=true`,
//! `TRUE` or `1`), where a missing bed is a failure: CI must never pass by skipping.
#![allow(dead_code)]

pub mod faults;
pub mod hostile;
pub mod tty;
pub mod upgrade;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Bed {
    pub dir: PathBuf,
    /// The kube-apiserver's address (`127.0.0.1:6443` unless the bed runs on other ports).
    pub api: String,
    pub kubeconfig: PathBuf,
    pub reg_plain: String,
    pub reg_basic: String,
    pub reg_token: String,
    pub reg_tls: String,
    pub ca: PathBuf,
    pub docker_config: PathBuf,
    pub seed: serde_json::Value,
    /// An empty docker config dir, so the developer's own credentials never leak into tests.
    pub empty_docker_config: PathBuf,
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn port_open(addr: &str) -> bool {
    use std::net::ToSocketAddrs;
    let Ok(mut addrs) = addr.to_socket_addrs() else {
        return false;
    };
    addrs.next().is_some_and(|a| {
        std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_millis(500)).is_ok()
    })
}

/// Whether this is a CI run: `CI` set to `true` (any case: GitHub and GitLab set `true`, others
/// `TRUE`) or `1`. There a missing bed or tool fails instead of skipping.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Says, where the developer sees it, that the calling test did not run. The test runner
/// captures `print!`/`eprint!` (and shows them only for a failed test), so an `eprintln!` here
/// would leave a skipped test looking green; a write to the process's stderr handle is not
/// captured and shows up in `cargo test`'s output next to the test's `ok`. The test's name is
/// its thread's name under the test runner.
fn skipped(problem: &str) {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("a bed test");
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {name}: test bed not running ({problem}); start it with `scripts/testbed up`, \
         or set CI=true to make a missing bed fail"
    );
}

impl Bed {
    /// The running bed, or `None` (the test is skipped, visibly) outside CI; under CI a
    /// missing bed fails the test.
    pub fn get() -> Option<Bed> {
        let dir = PathBuf::from(env_or("ASTRO_SHA_TESTBED_DIR", "/tmp/astro-sha-testbed"));
        let kubeconfig = dir.join("kubeconfig");
        let seed_path = dir.join("seed.json");
        let api = format!("127.0.0.1:{}", env_or("ASTRO_SHA_APISERVER_PORT", "6443"));
        let reg_plain = env_or("ASTRO_SHA_REG_PLAIN", "127.0.0.1:5000");
        let problem = if !kubeconfig.exists() {
            Some(format!("{} missing", kubeconfig.display()))
        } else if !seed_path.exists() {
            Some(format!(
                "{} missing (run `scripts/testbed seed`)",
                seed_path.display()
            ))
        } else if !port_open(&api) {
            Some(format!("kube-apiserver not listening on {api}"))
        } else if !port_open(&reg_plain) {
            Some(format!("registry not listening on {reg_plain}"))
        } else {
            None
        };
        if let Some(p) = problem {
            if under_ci() {
                panic!(
                    "test bed missing under CI (CI={:?}): {p}. Start it with `scripts/testbed up`.",
                    std::env::var("CI").unwrap_or_default()
                );
            }
            skipped(&p);
            return None;
        }
        let seed =
            serde_json::from_str(&std::fs::read_to_string(&seed_path).expect("read seed.json"))
                .expect("seed.json parses");
        let empty = dir.join("empty-docker-config");
        std::fs::create_dir_all(&empty).expect("create empty docker config dir");
        Some(Bed {
            api,
            kubeconfig,
            reg_plain,
            reg_basic: env_or("ASTRO_SHA_REG_BASIC", "127.0.0.1:5001"),
            reg_token: env_or("ASTRO_SHA_REG_TOKEN", "127.0.0.1:5002"),
            reg_tls: env_or("ASTRO_SHA_REG_TLS", "127.0.0.1:5443"),
            ca: dir.join("pki/ca.pem"),
            docker_config: dir.join("docker-config"),
            seed,
            empty_docker_config: empty,
            dir,
        })
    }

    /// The plugin binary with the bed's kubeconfig and registry settings, and nothing from the
    /// developer's environment (docker credentials, colours, log filters).
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kubectl-astro_sha"));
        c.env("KUBECONFIG", &self.kubeconfig)
            .env(
                "ASTRO_SHA_INSECURE_REGISTRY",
                format!("{},{},{}", self.reg_plain, self.reg_basic, self.reg_token),
            )
            .env("ASTRO_SHA_REGISTRY_CA", &self.ca)
            .env("DOCKER_CONFIG", &self.empty_docker_config)
            .env("NO_COLOR", "1")
            .env_remove("ASTRO_SHA_REGISTRY_MIRROR")
            .env_remove("ASTRO_SHA_RUNTIME_REPOSITORY")
            .env_remove("ASTRO_SHA_LOG")
            // a test machine that is itself a pod must not hand the plugin its service account
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            // podman's auth.json (REGISTRY_AUTH_FILE, then $XDG_RUNTIME_DIR/containers/auth.json) is read
            // like docker's config: a developer's own login must not leak into tests.
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Out {
        Out::from(
            self.cmd()
                .args(args)
                .output()
                .expect("run kubectl-astro_sha"),
        )
    }

    pub fn run_with(&self, args: &[&str], f: impl FnOnce(&mut Command)) -> Out {
        let mut c = self.cmd();
        c.args(args);
        f(&mut c);
        Out::from(c.output().expect("run kubectl-astro_sha"))
    }

    /// kubectl against the bed as admin (or `--context` given in args).
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

    /// Writes a pod's `status` (a merge patch of the pods/status subresource): the bed runs no
    /// kubelet, so this is how a test says what a pod runs.
    #[track_caller]
    pub fn set_pod_status(&self, ns: &str, pod: &str, status: &serde_json::Value) {
        let o = self.kubectl(&[
            "patch",
            "pod",
            pod,
            "-n",
            ns,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status.to_string(),
        ]);
        assert!(o.ok(), "pods/status of {ns}/{pod}: {}", o.stderr);
    }

    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Out {
        kubectl_with_input(&self.kubeconfig, args, input)
    }

    pub fn apply(&self, yaml: &str) {
        let o = self.kubectl_stdin(&["apply", "-f", "-"], yaml);
        assert!(o.ok(), "kubectl apply failed: {}", o.stderr);
    }

    pub fn get_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        let o = self.kubectl(&a);
        assert!(o.ok(), "kubectl get {args:?} failed: {}", o.stderr);
        serde_json::from_str(&o.stdout).expect("kubectl json")
    }

    /// Pushes a deterministic image (same ref+kind+salt, same digest) and returns its digest.
    pub fn push(&self, reference: &str, kind: &str, salt: &str) -> String {
        let o = Out::from(
            Command::new(repo_root().join("scripts/testbed"))
                .args(["push", reference, "--kind", kind, "--salt", salt])
                .env("ASTRO_SHA_TESTBED_DIR", &self.dir)
                .output()
                .expect("run scripts/testbed push"),
        );
        assert!(o.ok(), "testbed push failed: {}", o.stderr);
        o.stdout
            .lines()
            .next()
            .expect("digest line")
            .trim()
            .to_string()
    }

    /// Pushes deterministic images (`reference`, kind, salt) in one batch and returns their
    /// digests, in order.
    pub fn push_batch(&self, images: &[(String, &str, &str)]) -> Vec<String> {
        let list: String = images
            .iter()
            .map(|(r, kind, salt)| format!("{r} {kind} {salt}\n"))
            .collect();
        let mut child = Command::new(repo_root().join("scripts/testbed"))
            .args(["push", "--batch", "-"])
            .env("ASTRO_SHA_TESTBED_DIR", &self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run scripts/testbed push --batch");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(list.as_bytes())
            .expect("write the batch");
        let o = Out::from(child.wait_with_output().expect("testbed push output"));
        assert!(o.ok(), "testbed push --batch failed: {}", o.stderr);
        o.json()
            .as_array()
            .expect("a list of pushed images")
            .iter()
            .map(|i| i["digest"].as_str().expect("digest").to_string())
            .collect()
    }

    /// A namespace no other test uses, with its `default` ServiceAccount. Deleted (contents, then
    /// the namespace, then finalized as the namespace controller would) when the guard drops;
    /// ASTRO_SHA_KEEP_TEST_NAMESPACES=1 keeps it for debugging.
    pub fn namespace(&self, prefix: &str) -> TestNamespace {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let ns = format!(
            "{prefix}-{}-{}-{}",
            std::process::id() % 100000,
            N.fetch_add(1, Ordering::SeqCst),
            nanos % 10000
        );
        self.apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels:\n    platform-release: astronomer\n    astro-sha-test: \"true\"\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: default\n  namespace: {ns}\n"
        ));
        TestNamespace {
            name: ns,
            kubeconfig: self.kubeconfig.clone(),
        }
    }

    /// Seeded digest of `repository:tag` from seed.json.
    pub fn seeded(&self, repository: &str, tag: &str) -> serde_json::Value {
        self.seed["images"]
            .as_array()
            .expect("seed images")
            .iter()
            .find(|i| i["repository"] == repository && i["tag"] == tag)
            .unwrap_or_else(|| panic!("{repository}:{tag} not in seed.json"))
            .clone()
    }

    pub fn seeded_digest(&self, repository: &str, tag: &str) -> String {
        self.seeded(repository, tag)["digest"]
            .as_str()
            .expect("digest")
            .to_string()
    }

    /// Lines of a registry flavour's access log, for request counting.
    pub fn registry_log(&self, flavour: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("logs/registry-{flavour}.log")))
            .unwrap_or_default()
    }

    pub fn token_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("logs/token-server.log")).unwrap_or_default()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Out {
    fn from(o: Output) -> Self {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code; stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// An Airflow Deployment shaped like the airflow chart renders it, for tests that write to it.
/// `runtime` is the full Runtime image; `scheduler_kind` is `Deployment` or `StatefulSet`.
pub fn airflow_release_yaml(
    ns: &str,
    release: &str,
    runtime: &str,
    scheduler_kind: &str,
) -> String {
    let labels = |component: &str| {
        format!("tier: airflow\n    component: {component}\n    release: {release}")
    };
    let sts_extra = if scheduler_kind == "StatefulSet" {
        format!("\n  serviceName: {release}-scheduler")
    } else {
        String::new()
    };
    format!(
        r#"apiVersion: apps/v1
kind: {scheduler_kind}
metadata:
  name: {release}-scheduler
  namespace: {ns}
  labels:
    {sl}
spec:{sts_extra}
  replicas: 1
  selector:
    matchLabels:
      tier: airflow
      component: scheduler
      release: {release}
  template:
    metadata:
      labels:
        {sl2}
    spec:
      initContainers:
        - name: wait-for-airflow-migrations
          image: {runtime}
          args: ["airflow", "db", "check-migrations"]
      containers:
        - name: scheduler
          image: {runtime}
          args: ["airflow", "scheduler"]
        - name: scheduler-log-groomer
          image: {runtime}
          args: ["bash", "/clean-logs"]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {release}-webserver
  namespace: {ns}
  labels:
    {wl}
spec:
  replicas: 1
  selector:
    matchLabels:
      tier: airflow
      component: webserver
      release: {release}
  template:
    metadata:
      labels:
        {wl2}
    spec:
      containers:
        - name: webserver
          image: {runtime}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {release}-statsd
  namespace: {ns}
  labels:
    {stl}
spec:
  replicas: 1
  selector:
    matchLabels:
      tier: airflow
      component: statsd
      release: {release}
  template:
    metadata:
      labels:
        {stl2}
    spec:
      containers:
        - name: statsd
          image: quay.io/prometheus/statsd-exporter:v0.26.1
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {release}-config
  namespace: {ns}
  labels:
    {cl}
data:
  airflow.cfg: |
    [core]
    executor = KubernetesExecutor
  pod_template_file.yaml: |
    # Pod template for KubernetesExecutor workers
    ---
    apiVersion: v1
    kind: Pod
    metadata:
      name: placeholder-name
      labels:
        tier: airflow
        component: worker
        release: {release}
    spec:
      containers:
        - args: []
          image: {runtime}   # the Runtime
          imagePullPolicy: IfNotPresent
          name: base
      restartPolicy: Never
"#,
        sl = labels("scheduler"),
        sl2 = labels("scheduler").replace("\n    ", "\n        "),
        wl = labels("webserver"),
        wl2 = labels("webserver").replace("\n    ", "\n        "),
        stl = labels("statsd"),
        stl2 = labels("statsd").replace("\n    ", "\n        "),
        cl = labels("config"),
    )
}

pub fn write_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).expect("write file");
    p
}

/// A test's own namespace; derefs to its name.
pub struct TestNamespace {
    pub name: String,
    kubeconfig: PathBuf,
}

impl std::ops::Deref for TestNamespace {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Display for TestNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl AsRef<std::ffi::OsStr> for TestNamespace {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.name.as_ref()
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::env::var_os("ASTRO_SHA_KEEP_TEST_NAMESPACES").is_some() {
            return;
        }
        delete_namespace(&self.kubeconfig, &self.name);
    }
}

/// Deletes a namespace on a bed without controller-manager: its contents first (nothing else
/// would), then the namespace, then the finalize call the namespace controller would make.
pub fn delete_namespace(kubeconfig: &Path, ns: &str) {
    let kubectl = |args: &[&str], input: Option<&str>| {
        let mut c = Command::new("kubectl");
        c.env("KUBECONFIG", kubeconfig)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match input {
            Some(text) => {
                c.stdin(Stdio::piped());
                if let Ok(mut child) = c.spawn() {
                    if let Some(mut stdin) = child.stdin.take() {
                        let _ = stdin.write_all(text.as_bytes());
                    }
                    let _ = child.wait();
                }
            }
            None => {
                let _ = c.stdin(Stdio::null()).status();
            }
        }
    };
    kubectl(&["delete", "deployments,statefulsets,cronjobs.batch,configmaps,pods,secrets,roles,rolebindings,serviceaccounts", "--all", "-n", ns, "--wait=false", "--grace-period=0"], None);
    kubectl(&["delete", "namespace", ns, "--wait=false"], None);
    let body = format!(
        r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{ns}"}},"spec":{{"finalizers":[]}}}}"#
    );
    kubectl(
        &[
            "replace",
            "--raw",
            &format!("/api/v1/namespaces/{ns}/finalize"),
            "-f",
            "-",
        ],
        Some(&body),
    );
}

/// kubectl with `input` on its stdin, against the cluster of `kubeconfig`.
pub fn kubectl_with_input(kubeconfig: &Path, args: &[&str], input: &str) -> Out {
    let mut child = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    Out::from(child.wait_with_output().expect("kubectl output"))
}

/// Runs `args` on a terminal (a pty from util-linux `script`), sends `keys` once the
/// confirmation (`[y/N]`) is on it, and returns the exit code and everything the terminal showed.
pub fn on_a_terminal(bed: &Bed, args: &[&str], keys: &[u8]) -> (i32, String) {
    let keys = String::from_utf8(keys.to_vec()).expect("keys are text");
    tty::on_a_terminal(bed, args, |_| keys)
}
