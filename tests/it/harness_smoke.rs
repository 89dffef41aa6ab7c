/// The harness itself: skip outside CI when the bed is down, and the binary runs.
#[test]
fn binary_prints_version() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-astro_sha"))
        .arg("version")
        .output()
        .expect("run");
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.starts_with(&format!("kubectl-astro_sha {}", env!("CARGO_PKG_VERSION"))),
        "{s}"
    );
}
