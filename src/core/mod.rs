//! The pure domain: no API client, no registry client, no printing.

pub mod catalog;
pub mod catalog_index;
pub mod container;
pub mod contexts;
pub mod credentials;
pub mod digest;
pub mod edit;
pub mod helm;
pub mod image_ref;
pub mod inventory;
pub mod names;
pub mod plan;
pub mod podtemplate;
pub mod proxy;
pub mod pullsecrets;
pub mod resolution;
pub mod rollout;
pub mod state;
pub mod values;

/// `sha256:` and the first 12 hex digits, for tables (full digests in `-o wide` and JSON).
/// Char-based: a value that is not a digest (non-ASCII included) is shortened, never split
/// inside a UTF-8 sequence.
pub fn short_digest(d: &str) -> String {
    match d.split_once(':') {
        Some((alg, hex)) if hex.chars().count() > 12 => {
            format!("{alg}:{}", hex.chars().take(12).collect::<String>())
        }
        _ => d.to_string(),
    }
}

/// An image reference with its digest shortened (`repo:tag@sha256:` + 12), for tables.
pub fn short_reference(image: &str) -> String {
    match image.rsplit_once('@') {
        Some((name, digest)) => format!("{name}@{}", short_digest(digest)),
        None => image.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_digest_never_splits_a_character() {
        assert_eq!(
            super::short_digest(&format!("sha256:{}", "a".repeat(64))),
            "sha256:aaaaaaaaaaaa"
        );
        assert_eq!(
            super::short_digest(&format!("sha256:{}", "é".repeat(20))),
            format!("sha256:{}", "é".repeat(12))
        );
        assert_eq!(super::short_digest("sha256:abc"), "sha256:abc");
    }
}
