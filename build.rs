// Records the git commit for `kubectl astro-sha version`. Falls back to "unknown" outside a
// checkout (e.g. a crates.io build), or ASTRO_SHA_GIT_COMMIT when the release script sets it.
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=ASTRO_SHA_GIT_COMMIT");
    // Watch the files that move when HEAD does. In a `git worktree` `.git` is a file, and HEAD
    // lives in the worktree's own git dir: a path that does not exist would make cargo re-run
    // this script (and relink) on every build.
    for path in ["HEAD", "refs/heads"] {
        let out = Command::new("git")
            .args(["rev-parse", "--git-path", path])
            .output()
            .ok()
            .filter(|o| o.status.success());
        if let Some(out) = out {
            let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if std::path::Path::new(&p).exists() {
                println!("cargo:rerun-if-changed={p}");
            }
        }
    }
    let commit = std::env::var("ASTRO_SHA_GIT_COMMIT")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        });
    println!(
        "cargo:rustc-env=ASTRO_SHA_GIT_COMMIT={}",
        commit.unwrap_or_else(|| "unknown".into())
    );
    // Cargo always sets TARGET for build scripts; `version` shows it so a report names the archive.
    println!(
        "cargo:rustc-env=ASTRO_SHA_TARGET={}",
        std::env::var("TARGET").unwrap_or_else(|_| "unknown".into())
    );
}
