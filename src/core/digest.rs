//! A validated content digest: `sha256:` followed by 64 lower-case hex digits, nothing else.
//!
//! A digest is what pins a platform, so every digest that enters the program (registry headers,
//! index entries, computed hashes, later catalog entries and annotations) goes through
//! [`Digest::parse`] before it is used, printed or written. Other algorithms (`sha512:`, the OCI
//! spec allows them) are refused with their own message rather than trusted: nothing here can
//! verify them, and a Kubernetes pin of one would not match what the tool checked.
//!
//! Errors never echo the raw input: it is shown escaped (control characters as `\u{1b}`) and cut to
//! a short prefix, because the input often comes from a registry or a file the user does not control.

use std::fmt;

/// `sha256:` + 64 lower-case hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

/// Why a string is not a [`Digest`]; `source` says where it came from (set by [`DigestError::with_source`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestError {
    /// The offending input, escaped and cut to at most [`SHOWN_CHARS`] characters.
    pub(crate) input: String,
    pub(crate) reason: DigestProblem,
    /// Where the value came from, e.g. `Docker-Content-Digest header of quay.io/astronomer/astro-runtime:12.1.0`.
    pub(crate) source: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DigestProblem {
    Empty,
    NoAlgorithm,
    /// A well-formed digest of another algorithm (`sha512:`...).
    UnsupportedAlgorithm(String),
    BadHex,
}

/// How much of a bad input an error shows.
const SHOWN_CHARS: usize = 80;

impl Digest {
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let fail = |reason| {
            Err(DigestError {
                input: shown(s),
                reason,
                source: None,
            })
        };
        if s.is_empty() {
            return fail(DigestProblem::Empty);
        }
        let Some((algorithm, hex)) = s.split_once(':') else {
            return fail(DigestProblem::NoAlgorithm);
        };
        if algorithm != "sha256" {
            // The OCI grammar: algorithm-component ([a-z0-9]+) joined by [+._-].
            let well_formed = !algorithm.is_empty()
                && algorithm
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
            return if well_formed {
                fail(DigestProblem::UnsupportedAlgorithm(algorithm.to_string()))
            } else {
                fail(DigestProblem::NoAlgorithm)
            };
        }
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return fail(DigestProblem::BadHex);
        }
        Ok(Digest(s.to_string()))
    }

    /// [`Digest::parse`], naming where the value came from in the error.
    pub fn parse_from(s: &str, source: impl Into<String>) -> Result<Digest, DigestError> {
        Digest::parse(s).map_err(|e| e.with_source(source))
    }

    /// The sha256 of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Digest {
        use sha2::Digest as _;
        Digest(format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(bytes))
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// `sha256:` and the first 12 hex digits, for tables.
    pub fn short(&self) -> String {
        format!("sha256:{}", &self.hex()[..12])
    }
}

/// `s` for an error message: control characters escaped, cut to a short prefix.
pub(crate) fn shown(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == SHOWN_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

impl DigestError {
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }
}

impl fmt::Display for DigestProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DigestProblem::Empty => f.write_str("empty"),
            DigestProblem::NoAlgorithm => {
                f.write_str("not a digest (expected sha256:<64 hex digits>)")
            }
            DigestProblem::UnsupportedAlgorithm(a) => write!(
                f,
                "algorithm {a} is not supported: only sha256 digests are accepted"
            ),
            DigestProblem::BadHex => {
                f.write_str("not a sha256 digest (expected sha256: and 64 lower-case hex digits)")
            }
        }
    }
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.source {
            write!(f, "{s}: ")?;
        }
        write!(f, "\"{}\": {}", self.input, self.reason)?;
        Ok(())
    }
}

impl std::error::Error for DigestError {}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn accepts_only_sha256_lower_hex() {
        let d = Digest::parse(GOOD).unwrap();
        assert_eq!(d.to_string(), GOOD);
        assert_eq!(d.short(), "sha256:0123456789ab");
        assert_eq!(d.hex().len(), 64);
        for bad in [
            "",
            "not-a-digest",
            "sha256:",
            "sha256:0123",
            &GOOD.to_uppercase(),
            &GOOD.replace("sha256", "SHA256"),
            &format!("{GOOD}0"),
            &format!("{GOOD}\n"),
            &format!(" {GOOD}"),
            "sha256:not-a-digest\u{1b}[2J",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn other_algorithms_are_refused_by_name() {
        let e = Digest::parse(&format!("sha512:{}", "a".repeat(128))).unwrap_err();
        assert_eq!(
            e.reason,
            DigestProblem::UnsupportedAlgorithm("sha512".into())
        );
        assert!(e.to_string().contains("only sha256"), "{e}");
    }

    #[test]
    fn errors_name_their_source_and_never_carry_control_characters() {
        let e =
            Digest::parse_from("sha256:x\u{1b}[2J\u{7}", "index entry linux/amd64").unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("index entry linux/amd64: "), "{text}");
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert!(text.contains("\\u{1b}"), "{text}");
        let long = Digest::parse(&"é".repeat(500)).unwrap_err().to_string();
        assert!(long.chars().count() < 200, "{long}");
    }

    #[test]
    fn serde_round_trip_validates() {
        let d: Digest = serde_json::from_str(&format!("\"{GOOD}\"")).unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{GOOD}\""));
        assert!(serde_json::from_str::<Digest>("\"sha256:abc\"").is_err());
    }

    #[test]
    fn hashes_bytes() {
        assert_eq!(
            Digest::of_bytes(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
