//! The hostile registry (`scripts/testbed-lib/hostile_registry.py`), started per test on free
//! loopback ports: a registry and an auxiliary server (token realm, redirect target) that
//! misbehave in one chosen way (`--mode`). Used by hostile_registry.rs and hostile_cluster.rs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{repo_root, Bed};

pub struct Hostile {
    child: Child,
    pub registry: u16,
    pub aux: u16,
    dir: tempfile::TempDir,
}

impl Hostile {
    /// `tls`/`aux_tls`: "none", "bed" (a leaf signed by the bed's CA) or "untrusted".
    pub fn start(bed: &Bed, mode: &str, tls: &str, aux_tls: &str, extra: &[&str]) -> Hostile {
        let dir = tempfile::Builder::new()
            .prefix("astro-sha-hostile-test-")
            .tempdir()
            .expect("tempdir");
        let mut child = Command::new("python3")
            .arg(repo_root().join("scripts/testbed-lib/hostile_registry.py"))
            .args(["--mode", mode, "--tls", tls, "--aux-tls", aux_tls])
            .arg("--ca-cert")
            .arg(bed.path("pki/ca.pem"))
            .arg("--ca-key")
            .arg(bed.path("pki/ca.key"))
            .arg("--log")
            .arg(dir.path().join("requests.jsonl"))
            .args([
                "--ttl",
                "120",
                "--parent-pid",
                &std::process::id().to_string(),
            ])
            .args(extra)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start hostile_registry.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read ports");
        let ports: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("hostile registry did not print its ports ({e}): {line:?}"));
        Hostile {
            child,
            registry: ports["registry"].as_u64().expect("registry port") as u16,
            aux: ports["aux"].as_u64().expect("aux port") as u16,
            dir,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.registry)
    }
    pub fn aux_host(&self) -> String {
        format!("127.0.0.1:{}", self.aux)
    }
    pub fn image(&self) -> String {
        format!("{}/astronomer/astro-runtime:12.1.0", self.host())
    }
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
    /// The log entry the server writes when a body it streams stops (`endless body stopped`,
    /// `drip stopped`): written once the client is gone, so it is waited for (the server
    /// stops by itself within 60 s of the drip's length, and --ttl ends it).
    pub fn stopped(&self, event: &str) -> Value {
        for _ in 0..2400 {
            if let Some(e) = self.requests().into_iter().find(|r| r["event"] == event) {
                return e;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the hostile registry never logged {event:?}: {:#?}",
            self.requests()
        );
    }
    pub fn aux_requests(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["port"] == "aux" && r["method"].is_string())
            .collect()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the loopback socket buffers may hold beyond what the client read (the kernel's
/// tcp_wmem and tcp_rmem maxima are 4 and 6 MiB by default): a bounded read leaves the server
/// having sent at most its limit plus this; an unbounded one takes gigabytes within the server's
/// 60 s.
pub const SOCKET_SLACK: u64 = 16 << 20;

/// The server's account of an endless body: the client closed it (not the server's own 60 s
/// end), having been sent no more than `limit` plus the socket buffers.
#[track_caller]
pub fn assert_cut_by_the_client(h: &Hostile, limit: u64) {
    let e = h.stopped("endless body stopped");
    assert_eq!(e["closed_by_client"], true, "{e}");
    let sent = e["bytes"].as_u64().expect("bytes");
    assert!(sent < limit + SOCKET_SLACK, "{sent} bytes sent: {e}");
}
