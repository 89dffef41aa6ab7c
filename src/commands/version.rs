//! Version string: crate version plus the git commit it was built from (set by build.rs), so a
//! bug report or an audit can name the exact source a binary came from.

use serde::Serialize;

use crate::args::GlobalArgs;
use crate::error::ExitStatus;
use crate::error::Result;
use crate::output;

pub(crate) const SHORT: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("ASTRO_SHA_GIT_COMMIT"),
    ")"
);
pub(crate) const COMMIT: &str = env!("ASTRO_SHA_GIT_COMMIT");
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The Rust target triple the binary was built for; tells which release archive it came from.
pub(crate) const TARGET: &str = env!("ASTRO_SHA_TARGET");

/// What `version -o json|yaml` prints; field names are part of the scripting interface.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub(crate) struct Info {
    pub(crate) version: &'static str,
    pub(crate) commit: &'static str,
    pub(crate) target: &'static str,
}

pub(crate) fn info() -> Info {
    Info {
        version: VERSION,
        commit: COMMIT,
        target: TARGET,
    }
}

/// `kubectl astro-sha version`: one line for people (table/wide), JSON or YAML for scripts.
pub(crate) fn run(g: &GlobalArgs) -> Result<ExitStatus> {
    let text = match output::structured(&info(), g.output)? {
        Some(s) => s,
        None => format!("kubectl-astro_sha {VERSION} (commit {COMMIT}, {TARGET})\n"),
    };
    output::print(&text)?;
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_version_names_version_commit_and_target() {
        let json = output::structured(&info(), crate::args::OutputFormat::Json)
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(v["commit"], COMMIT);
        assert!(!TARGET.is_empty());
        let yaml = output::structured(&info(), crate::args::OutputFormat::Yaml)
            .unwrap()
            .unwrap();
        assert!(yaml.contains(&format!("version: {VERSION}")), "{yaml}");
    }
}
