// Records the git commit for `kubectl astro-sha version`. Falls back to "unknown" outside this
// crate's own checkout (e.g. a crates.io build, even one unpacked inside some other git
// repository, whose commit would be a lie), or ASTRO_SHA_GIT_COMMIT when the release script sets it.
use std::path::{Path, PathBuf};
use std::process::Command;

/// `git <args>` run in `dir`, its trimmed stdout when it succeeds.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The crate's directory, when it is the top level of a git work tree (not a folder inside one).
fn own_checkout() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    let top = PathBuf::from(git(&dir, &["rev-parse", "--show-toplevel"])?);
    let same = match (top.canonicalize(), dir.canonicalize()) {
        (Ok(t), Ok(d)) => t == d,
        _ => false,
    };
    same.then_some(dir)
}

fn main() {
    println!("cargo:rerun-if-env-changed=ASTRO_SHA_GIT_COMMIT");
    let checkout = own_checkout();
    if let Some(dir) = &checkout {
        // Watch the files that move when HEAD does. In a `git worktree` `.git` is a file, and HEAD
        // lives in the worktree's own git dir: a path that does not exist would make cargo re-run
        // this script (and relink) on every build.
        for path in ["HEAD", "refs/heads"] {
            if let Some(p) = git(
                dir,
                &["rev-parse", "--path-format=absolute", "--git-path", path],
            ) {
                if Path::new(&p).exists() {
                    println!("cargo:rerun-if-changed={p}");
                }
            }
        }
    }
    let commit = std::env::var("ASTRO_SHA_GIT_COMMIT")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| git(checkout.as_deref()?, &["rev-parse", "--short=12", "HEAD"]));
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
