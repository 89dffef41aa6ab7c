//! The pure domain: no API client, no registry client, no printing.

pub mod catalog;
pub mod container;
pub mod digest;
pub mod edit;
pub mod helm;
pub mod inventory;
pub mod names;
pub mod plan;
pub mod podtemplate;
pub mod state;
pub mod values;

/// `sha256:` and the first 12 hex digits, for tables (full digests in `-o wide` and JSON).
pub fn short_digest(d: &str) -> String {
    match d.split_once(':') {
        Some((alg, hex)) if hex.len() > 12 => format!("{alg}:{}", &hex[..12]),
        _ => d.to_string(),
    }
}
