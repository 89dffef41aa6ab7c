//! The Astro Runtime releases catalog (`https://updates.astronomer.io/astronomer-runtime`) as a
//! document to enrich, not a schema to model: Houston and other readers rely on fields this plugin
//! knows nothing about, so the catalog is kept as a `serde_json::Value` (with `preserve_order`) and
//! only the digest field is ever touched. Parsing, the digest field's place, version ordering,
//! entry selection and the merge with what a ConfigMap already holds live here; the command that
//! drives them is `import`.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The data key Houston's chart mounts with `subPath`; any other spelling breaks the mount.
pub(crate) const DATA_KEY: &str = crate::core::names::RELEASES_DATA_KEY;
/// The API server refuses a ConfigMap whose data values add up to more than this.
pub(crate) const CONFIGMAP_LIMIT: usize = 1024 * 1024;

/// The two version maps of the catalog. Airflow 3 runtimes restarted the numbering (`3.1-2`), so
/// which map an entry sits in — not its tag — says which image repository holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub(crate) enum Section {
    Airflow2,
    Airflow3,
}

impl Section {
    pub(crate) const ALL: [Section; 2] = [Section::Airflow2, Section::Airflow3];

    pub(crate) fn key(self) -> &'static str {
        match self {
            Section::Airflow2 => "runtimeVersions",
            Section::Airflow3 => "runtimeVersionsV3",
        }
    }

    pub(crate) fn airflow(self) -> u8 {
        match self {
            Section::Airflow2 => 2,
            Section::Airflow3 => 3,
        }
    }

    fn from_key(k: &str) -> Option<Section> {
        Section::ALL.into_iter().find(|s| s.key() == k)
    }
}

/// A parsed catalog: a JSON object whose version maps (if present) are objects of objects.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Catalog {
    root: Map<String, Value>,
}

impl Catalog {
    /// Parses a catalog from `origin` (named in errors). `require_versions` is set for a source:
    /// a document without either version map is not a releases catalog. A ConfigMap's copy may be
    /// an empty object.
    pub(crate) fn parse(text: &str, origin: &str, require_versions: bool) -> Result<Catalog> {
        let hint = "the source must be the Astro Runtime releases catalog (JSON), as served by https://updates.astronomer.io/astronomer-runtime";
        if text.trim().is_empty() {
            return Err(Error::new(format!("catalog from {origin} is empty")).hint(hint));
        }
        let value: Value = serde_json::from_str(text).map_err(|e| {
            Error::new(format!("catalog from {origin} is not valid JSON: {e}")).hint(hint)
        })?;
        let Value::Object(root) = value else {
            return Err(Error::new(format!(
                "catalog from {origin} is a JSON {}, not an object",
                json_kind(&value)
            ))
            .hint(hint));
        };
        let mut found = false;
        for s in Section::ALL {
            let Some(map) = root.get(s.key()) else {
                continue;
            };
            found = true;
            let Value::Object(map) = map else {
                return Err(Error::new(format!(
                    "catalog from {origin}: {} is a JSON {}, not an object of versions",
                    s.key(),
                    json_kind(map)
                ))
                .hint(hint));
            };
            for (tag, entry) in map {
                if !entry.is_object() {
                    return Err(Error::new(format!(
                        "catalog from {origin}: {}.{tag:?} is a JSON {}, not an object",
                        s.key(),
                        json_kind(entry)
                    ))
                    .hint(hint));
                }
            }
        }
        if require_versions && !found {
            let keys: Vec<&str> = root.keys().map(String::as_str).take(8).collect();
            return Err(Error::new(format!(
                "catalog from {origin} has neither runtimeVersions (Airflow 2) nor runtimeVersionsV3 (Airflow 3); top-level keys: [{}]",
                keys.join(", ")
            ))
            .hint(hint));
        }
        Ok(Catalog { root })
    }

    /// Every entry in document order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (Section, &str, &Map<String, Value>)> {
        Section::ALL.into_iter().flat_map(move |s| {
            self.root
                .get(s.key())
                .and_then(Value::as_object)
                .into_iter()
                .flat_map(move |m| {
                    m.iter()
                        .filter_map(move |(k, v)| v.as_object().map(|o| (s, k.as_str(), o)))
                })
        })
    }

    pub(crate) fn entry(&self, section: Section, tag: &str) -> Option<&Map<String, Value>> {
        self.root
            .get(section.key())
            .and_then(Value::as_object)
            .and_then(|m| m.get(tag))
            .and_then(Value::as_object)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries().count()
    }

    /// How the ConfigMap and `--output-file` hold it: 2-space indented, newline-terminated, so a
    /// `kubectl get -o yaml` or a Git diff stays readable.
    pub(crate) fn to_pretty(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.root).unwrap_or_else(|_| "{}".into());
        s.push('\n');
        s
    }

    /// The same document without whitespace, for when only that fits a ConfigMap.
    pub(crate) fn to_compact(&self) -> String {
        serde_json::to_string(&self.root).unwrap_or_else(|_| "{}".into())
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The channel of an entry (`stable`, `lts`, `deprecated`, `alpha`, ...), from `metadata.channel`.
pub(crate) fn channel(entry: &Map<String, Value>) -> Option<&str> {
    entry.get("metadata")?.get("channel")?.as_str()
}

/// `metadata.yanked: true` marks a withdrawn build.
pub(crate) fn yanked(entry: &Map<String, Value>) -> bool {
    entry
        .get("metadata")
        .and_then(|m| m.get("yanked"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Where in an entry the digest lives. Houston's reader is closed source, so the place is a
/// documented choice (`sha256` at entry level) that `--digest-field` can move.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DigestField(Vec<String>);

impl Default for DigestField {
    fn default() -> Self {
        DigestField(vec![crate::core::names::DEFAULT_DIGEST_FIELD.into()])
    }
}

impl std::fmt::Display for DigestField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

impl DigestField {
    /// A dotted path relative to the entry, e.g. `metadata.sha256`.
    pub(crate) fn parse(s: &str) -> std::result::Result<Self, String> {
        let parts: Vec<String> = s.split('.').map(str::to_string).collect();
        if s.is_empty() || parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "{s:?} is not a dotted field path like sha256 or metadata.sha256"
            ));
        }
        if parts.len() == 1 && (parts[0] == "metadata" || parts[0] == "migrations") {
            return Err(format!(
                "{s:?} would replace the entry's {} object; name a field inside it, e.g. {}.sha256",
                parts[0], parts[0]
            ));
        }
        Ok(DigestField(parts))
    }

    /// The string at this path in an entry, `None` when absent, unvalidated: the one walk every
    /// reader of recorded digests uses (import, `pin --from-configmap`, `status`). A parent that
    /// is not an object, or a value that is not a string, is an error.
    pub(crate) fn raw<'a>(
        &self,
        entry: &'a Map<String, Value>,
    ) -> std::result::Result<Option<&'a str>, String> {
        let (last, parents) = self.0.split_last().ok_or("empty field path")?;
        let mut cur = entry;
        for (i, p) in parents.iter().enumerate() {
            match cur.get(p) {
                None | Some(Value::Null) => return Ok(None),
                Some(Value::Object(o)) => cur = o,
                Some(other) => {
                    return Err(format!(
                        "{} is a JSON {}, not an object",
                        self.0[..=i].join("."),
                        json_kind(other)
                    ))
                }
            }
        }
        match cur.get(last) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!(
                "{self} is a JSON {}, not a digest string",
                json_kind(other)
            )),
        }
    }

    /// The digest an entry holds, `None` when absent. A value that is not a `sha256:<64 hex>`
    /// string is an error (checked by the one validator, `core::digest`): silently replacing it
    /// could destroy someone else's field.
    pub(crate) fn get(
        &self,
        entry: &Map<String, Value>,
    ) -> std::result::Result<Option<String>, String> {
        match self.raw(entry)? {
            None => Ok(None),
            Some(s) => crate::core::digest::Digest::parse_from(s, self.to_string())
                .map(|d| Some(d.to_string()))
                .map_err(|e| e.to_string()),
        }
    }

    /// Writes the digest, creating intermediate objects; the field keeps its position when it
    /// already exists and is appended otherwise.
    pub(crate) fn set(
        &self,
        entry: &mut Map<String, Value>,
        digest: &str,
    ) -> std::result::Result<(), String> {
        let (last, parents) = self.0.split_last().ok_or("empty field path")?;
        let mut cur = entry;
        for (i, p) in parents.iter().enumerate() {
            let slot = cur
                .entry(p.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if slot.is_null() {
                *slot = Value::Object(Map::new());
            }
            match slot {
                Value::Object(o) => cur = o,
                other => {
                    return Err(format!(
                        "{} is a JSON {}, not an object",
                        self.0[..=i].join("."),
                        json_kind(other)
                    ))
                }
            }
        }
        cur.insert(last.clone(), Value::String(digest.to_string()));
        Ok(())
    }
}

/// The version maps of a raw catalog JSON that are present, by section.
pub(crate) fn sections(json: &Value) -> impl Iterator<Item = (Section, &Map<String, Value>)> {
    Section::ALL
        .into_iter()
        .filter_map(|s| Some((s, json.get(s.key())?.as_object()?)))
}

/// Every entry's digest at `field`, validated by the one validator (`core::digest`): the walk
/// `pin --from-configmap` and the digest → version index (`core::catalog_index`) share. An entry
/// without one is left out; one whose field is not a valid digest gives `Err` with a message
/// naming the entry.
pub(crate) fn entry_digests<'a>(
    json: &'a Value,
    field: &'a DigestField,
) -> impl Iterator<Item = (Section, &'a str, std::result::Result<String, String>)> + 'a {
    sections(json).flat_map(move |(section, versions)| {
        versions.iter().filter_map(move |(tag, entry)| {
            let source = format!(
                "entry {} {:?} ({field})",
                section.key(),
                crate::core::digest::shown(tag)
            );
            let value = match entry.as_object().map(|e| field.raw(e)) {
                None | Some(Ok(None)) => return None,
                Some(Ok(Some(v))) => v,
                Some(Err(e)) => {
                    return Some((section, tag.as_str(), Err(format!("{source}: {e}"))))
                }
            };
            let d = crate::core::digest::Digest::parse_from(value, source)
                .map(|d| d.to_string())
                .map_err(|e| e.to_string());
            Some((section, tag.as_str(), d))
        })
    })
}

/// The most `import` reads of a catalog (download, file or stdin). The real catalog is a few
/// hundred KiB and a ConfigMap holds at most 1 MiB; 16 MiB leaves room for growth and stops an
/// endless or hostile source early.
pub(crate) const MAX_SOURCE_BYTES: usize = 16 << 20;

/// A Runtime version, ordered numerically. Airflow 2 runtimes are `MAJOR.MINOR.PATCH[-PRE]`
/// (`13.9.0`, `13.0.0-alpha1`); Airflow 3 runtimes are `MAJOR.MINOR-BUILD[-PRE]` (`3.1-2` is
/// Airflow 3.1, build 2). Every Airflow 3 runtime sorts after every Airflow 2 runtime (the
/// numbering restarted with Airflow 3); a pre-release sorts before its release; pre-release
/// labels compare with digit runs as numbers (`alpha2 < alpha10`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RuntimeVersion {
    generation: Section,
    numbers: [u64; 3],
    pre: Option<String>,
}

impl RuntimeVersion {
    /// Parses a tag of the given section.
    pub(crate) fn parse_in(section: Section, s: &str) -> Option<RuntimeVersion> {
        let (core, pre) = match section {
            Section::Airflow2 => match s.split_once('-') {
                Some((c, p)) => (c, Some(p)),
                None => (s, None),
            },
            Section::Airflow3 => {
                // `3.1-2-alpha1`: the first dash separates the build, a second one the pre-release.
                let (mm, rest) = s.split_once('-')?;
                let (build, pre) = match rest.split_once('-') {
                    Some((b, p)) => (b, Some(p)),
                    None => (rest, None),
                };
                let n = parse_numbers(mm, 2)?;
                let b = number(build)?;
                return Some(RuntimeVersion {
                    generation: section,
                    numbers: [n[0], n[1], b],
                    pre: pre.filter(|p| !p.is_empty()).map(str::to_string),
                });
            }
        };
        if pre.is_some_and(str::is_empty) {
            return None;
        }
        let n = parse_numbers(core, 3)?;
        Some(RuntimeVersion {
            generation: section,
            numbers: [n[0], n[1], n[2]],
            pre: pre.map(str::to_string),
        })
    }

    /// Parses a version written by a user (`--min-version`): `X.Y-N` is an Airflow 3 runtime,
    /// `X.Y.Z` an Airflow 2 one. `3.1` alone is refused: Airflow 2 runtimes 3.x existed too.
    pub(crate) fn parse(s: &str) -> std::result::Result<RuntimeVersion, String> {
        let s = s.trim();
        let head = s.split('-').next().unwrap_or(s);
        let section = if head.split('.').count() == 2 && s.contains('-') {
            Section::Airflow3
        } else {
            Section::Airflow2
        };
        RuntimeVersion::parse_in(section, s).ok_or_else(|| {
            format!("{s:?} is not a Runtime version: write 13.0.0 (Airflow 2 runtimes) or 3.1-1 (Airflow 3 runtimes)")
        })
    }
}

fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_numbers(s: &str, n: usize) -> Option<Vec<u64>> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != n {
        return None;
    }
    parts.into_iter().map(number).collect()
}

/// Compares pre-release labels with digit runs as numbers.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<std::result::Result<u64, String>> {
        let mut out = vec![];
        let mut cur = String::new();
        let mut digits = false;
        for c in s.chars() {
            if !cur.is_empty() && c.is_ascii_digit() != digits {
                out.push(if digits {
                    cur.parse().map_err(|_| cur.clone())
                } else {
                    Err(cur.clone())
                });
                cur.clear();
            }
            digits = c.is_ascii_digit();
            cur.push(c);
        }
        if !cur.is_empty() {
            out.push(if digits {
                cur.parse().map_err(|_| cur.clone())
            } else {
                Err(cur)
            });
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(cb.iter()) {
        let o = match (x, y) {
            (Ok(m), Ok(n)) => m.cmp(n),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            (Err(m), Err(n)) => m.cmp(n),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    ca.len().cmp(&cb.len())
}

impl Ord for RuntimeVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.generation
            .cmp(&other.generation)
            .then(self.numbers.cmp(&other.numbers))
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => natural_cmp(a, b),
            })
    }
}

impl PartialOrd for RuntimeVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Which entries of the source a run imports. All conditions must hold.
#[derive(Clone, Debug, Default)]
pub(crate) struct Selection {
    /// Empty = every channel.
    pub(crate) channels: Vec<String>,
    pub(crate) min_version: Option<RuntimeVersion>,
    /// Empty = every version.
    pub(crate) versions: BTreeSet<String>,
    pub(crate) include_yanked: bool,
}

/// Why an entry was left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Skip {
    Channel,
    OlderThanMin,
    UnparsableVersion,
    NotListed,
    Yanked,
}

impl Selection {
    pub(crate) fn check(
        &self,
        section: Section,
        tag: &str,
        entry: &Map<String, Value>,
    ) -> Option<Skip> {
        if !self.versions.is_empty() && !self.versions.contains(tag) {
            return Some(Skip::NotListed);
        }
        if !self.channels.is_empty() {
            let c = channel(entry).unwrap_or("");
            if !self.channels.iter().any(|w| w == c) {
                return Some(Skip::Channel);
            }
        }
        if let Some(min) = &self.min_version {
            match RuntimeVersion::parse_in(section, tag) {
                Some(v) if v < *min => return Some(Skip::OlderThanMin),
                Some(_) => {}
                None => return Some(Skip::UnparsableVersion),
            }
        }
        if !self.include_yanked && yanked(entry) {
            return Some(Skip::Yanked);
        }
        None
    }
}

/// Builds the catalog to write: the source's document with `ours` (the enriched entries of this
/// run, keyed by section and tag) in place of its entries, merged with `theirs` (what the
/// ConfigMap holds now) so that nothing another writer or a person put there is lost:
/// - top-level keys in the source's order, then keys only `theirs` has;
/// - in each version map, the source's order: our entry where we have one (plus any field only
///   their copy of that entry has), else their entry untouched (a version filtered out of this run
///   is not deleted), else nothing (filtered out and never imported);
/// - then versions only `theirs` has (hand-added ones), in their order.
pub(crate) fn merge(
    source: &Catalog,
    ours: &HashMap<(Section, String), Map<String, Value>>,
    theirs: Option<&Catalog>,
) -> Catalog {
    let mut root = Map::new();
    for (key, value) in &source.root {
        let Some(section) = Section::from_key(key) else {
            root.insert(key.clone(), value.clone());
            continue;
        };
        let their_map = theirs
            .and_then(|t| t.root.get(key))
            .and_then(Value::as_object);
        let mut map = Map::new();
        if let Some(src) = value.as_object() {
            for tag in src.keys() {
                let their_entry = their_map
                    .and_then(|m| m.get(tag))
                    .and_then(Value::as_object);
                if let Some(mine) = ours.get(&(section, tag.clone())) {
                    let mut e = mine.clone();
                    if let Some(t) = their_entry {
                        for (k, v) in t {
                            if !e.contains_key(k) {
                                e.insert(k.clone(), v.clone());
                            }
                        }
                    }
                    map.insert(tag.clone(), Value::Object(e));
                } else if let Some(t) = their_entry {
                    map.insert(tag.clone(), Value::Object(t.clone()));
                }
            }
        }
        if let Some(tm) = their_map {
            for (tag, v) in tm {
                if !map.contains_key(tag) {
                    map.insert(tag.clone(), v.clone());
                }
            }
        }
        root.insert(key.clone(), Value::Object(map));
    }
    if let Some(t) = theirs {
        for (key, value) in &t.root {
            if !root.contains_key(key) {
                root.insert(key.clone(), value.clone());
            }
        }
    }
    Catalog { root }
}

/// Refuses a ConfigMap payload over the API server's limit before anything is sent, saying how
/// big it is and what would shrink it. `other` is the size of the ConfigMap's other data values.
pub(crate) fn check_size(payload: usize, other: usize) -> Result<()> {
    let total = payload + other;
    if total <= CONFIGMAP_LIMIT {
        return Ok(());
    }
    let others = if other > 0 {
        format!(" (plus {other} bytes in the ConfigMap's other keys)")
    } else {
        String::new()
    };
    Err(Error::new(format!(
        "the enriched catalog is {payload} bytes{others}, over the 1 MiB ({CONFIGMAP_LIMIT} bytes) a ConfigMap may hold; nothing was written"
    ))
    .hint("import fewer versions: --channel stable --channel lts, --min-version (e.g. 12.0.0 or 3.0-1), --versions LIST, and leave yanked builds out (no --include-yanked); or write a file with --output-file"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    const SMALL: &str = r#"{
  "version": "1.0",
  "x-top": {"b": 1, "a": 2},
  "runtimeVersions": {
    "13.9.0": {"metadata": {"airflowVersion": "2.11.2", "channel": "stable", "yanked": false, "zz": 1, "aa": 2}, "migrations": {"airflowDatabase": false}, "x-unknown": [1, {"q": null}]},
    "13.0.0-alpha1": {"metadata": {"channel": "alpha"}},
    "12.1.0": {"metadata": {"channel": "lts", "yanked": true}}
  },
  "runtimeVersionsV3": {
    "3.1-2": {"metadata": {"airflowVersion": "3.1.0", "channel": "stable", "pythonVersions": ["3.12", "3.13"]}},
    "3.0-1": {"metadata": {"channel": "deprecated"}}
  },
  "trailer": true
}"#;

    fn cat(s: &str) -> Catalog {
        Catalog::parse(s, "test", true).unwrap()
    }

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn round_trip_keeps_unknown_fields_and_key_order() {
        let c = cat(SMALL);
        let again = cat(&c.to_pretty());
        assert_eq!(c, again);
        let orig: Value = serde_json::from_str(SMALL).unwrap();
        let back: Value = serde_json::from_str(&c.to_compact()).unwrap();
        assert_eq!(orig, back);
        // Order survives, not only content.
        let keys: Vec<_> = c.root.keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "version",
                "x-top",
                "runtimeVersions",
                "runtimeVersionsV3",
                "trailer"
            ]
        );
        let meta: Vec<_> = c.entry(Section::Airflow2, "13.9.0").unwrap()["metadata"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(meta, ["airflowVersion", "channel", "yanked", "zz", "aa"]);
        // A merge with nothing to add is the identity.
        let ours: HashMap<_, _> = c
            .entries()
            .map(|(s, t, e)| ((s, t.to_string()), e.clone()))
            .collect();
        assert_eq!(merge(&c, &ours, None).to_pretty(), c.to_pretty());
        assert_eq!(
            merge(&c, &HashMap::new(), Some(&c)).to_pretty(),
            c.to_pretty()
        );
        assert!(c.to_pretty().starts_with("{\n  \"version\": \"1.0\",\n"));
    }

    #[test]
    fn bad_catalogs_say_what_is_wrong() {
        let e = Catalog::parse("", "file x.json", true).unwrap_err();
        assert!(e.message.contains("file x.json is empty"), "{}", e.message);
        let e = Catalog::parse("{\n  \"version\": 1,\n  oops\n}", "f", true).unwrap_err();
        assert!(e.message.contains("line 3 column 3"), "{}", e.message);
        let e = Catalog::parse(r#"{"version":"1.0","other":{}}"#, "f", true).unwrap_err();
        assert!(
            e.message.contains("neither runtimeVersions"),
            "{}",
            e.message
        );
        assert!(e.message.contains("version, other"), "{}", e.message);
        assert!(Catalog::parse(r#"{"version":"1.0"}"#, "cm", false).is_ok());
        let e = Catalog::parse("[1]", "f", true).unwrap_err();
        assert!(e.message.contains("array, not an object"), "{}", e.message);
        let e = Catalog::parse(r#"{"runtimeVersions":[]}"#, "f", true).unwrap_err();
        assert!(
            e.message.contains("runtimeVersions is a JSON array"),
            "{}",
            e.message
        );
        let e = Catalog::parse(r#"{"runtimeVersionsV3":{"3.1-1":"x"}}"#, "f", true).unwrap_err();
        assert!(
            e.message.contains("runtimeVersionsV3.\"3.1-1\""),
            "{}",
            e.message
        );
    }

    #[test]
    fn digest_field_default_and_nested() {
        let mut e = cat(SMALL)
            .entry(Section::Airflow2, "13.9.0")
            .unwrap()
            .clone();
        let top = DigestField::default();
        assert_eq!(top.get(&e).unwrap(), None);
        top.set(&mut e, &d('a')).unwrap();
        assert_eq!(
            e.keys().next_back().unwrap(),
            "sha256",
            "appended at entry level"
        );
        assert_eq!(top.get(&e).unwrap(), Some(d('a')));
        // Rewriting keeps the position.
        e.insert("later".into(), Value::Bool(true));
        top.set(&mut e, &d('b')).unwrap();
        let keys: Vec<_> = e.keys().cloned().collect();
        assert_eq!(
            keys,
            ["metadata", "migrations", "x-unknown", "sha256", "later"]
        );

        let nested = DigestField::parse("metadata.sha256").unwrap();
        nested.set(&mut e, &d('c')).unwrap();
        assert_eq!(e["metadata"]["sha256"], d('c'));
        assert_eq!(e["metadata"]["airflowVersion"], "2.11.2", "siblings kept");
        // Intermediate objects are created.
        let deep = DigestField::parse("x-astro-sha.images.runtime").unwrap();
        deep.set(&mut e, &d('e')).unwrap();
        assert_eq!(e["x-astro-sha"]["images"]["runtime"], d('e'));
        assert_eq!(deep.get(&e).unwrap(), Some(d('e')));
        // A path through a non-object is refused, not clobbered.
        let through = DigestField::parse("metadata.airflowVersion.sha").unwrap();
        assert!(through
            .set(&mut e, &d('f'))
            .unwrap_err()
            .contains("metadata.airflowVersion is a JSON string"));
        assert!(through.get(&e).is_err());
        // A non-digest value is reported, not overwritten silently.
        let av = DigestField::parse("metadata.airflowVersion").unwrap();
        // (checked by core::digest, the one validator; the message names the field and the value)
        let err = av.get(&e).unwrap_err();
        assert!(
            err.contains("metadata.airflowVersion") && err.contains("\"2.11.2\": not a digest"),
            "{err}"
        );
        for bad in ["", ".", "a..b", "metadata.", "metadata"] {
            assert!(DigestField::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            DigestField::parse("metadata.sha256").unwrap().to_string(),
            "metadata.sha256"
        );
    }

    #[test]
    fn digests_are_validated() {
        let ok = |s: &str| crate::core::digest::Digest::parse(s).is_ok();
        assert!(ok(&d('0')));
        assert!(!ok(&d('A')));
        assert!(!ok("sha256:abc"));
        assert!(!ok(&"a".repeat(64)));
    }

    fn v(s: &str) -> RuntimeVersion {
        RuntimeVersion::parse(s).unwrap()
    }

    #[test]
    fn versions_order_numerically() {
        assert!(v("9.10.0") > v("9.9.0"));
        assert!(v("13.0.0") > v("12.11.3"));
        assert!(v("13.0.0-alpha1") < v("13.0.0"));
        assert!(v("13.0.0-alpha1") < v("13.0.0-beta1"));
        assert!(v("13.0.0-alpha2") < v("13.0.0-alpha10"));
        assert!(v("13.0.0-alpha1") > v("12.99.99"));
        assert!(v("3.1-10") > v("3.1-9"));
        assert!(v("3.2-1") > v("3.1-12"));
        assert!(v("3.2-1-alpha1") < v("3.2-1"));
        assert!(
            v("3.0-1") > v("13.9.0"),
            "Airflow 3 runtimes come after Airflow 2 ones"
        );
        assert_eq!(
            RuntimeVersion::parse_in(Section::Airflow3, "3.1-2"),
            Some(v("3.1-2"))
        );
        assert_eq!(RuntimeVersion::parse_in(Section::Airflow2, "3.1-2"), None);
        assert_eq!(RuntimeVersion::parse_in(Section::Airflow3, "13.9.0"), None);
        for bad in [
            "3.1", "latest", "13.9", "1.2.3.4", "3.1-", "13.0.0-", "3.x-1", "-1",
        ] {
            assert!(RuntimeVersion::parse(bad).is_err(), "{bad}");
        }
    }

    fn selected(c: &Catalog, s: &Selection) -> Vec<String> {
        c.entries()
            .filter(|(sec, tag, e)| s.check(*sec, tag, e).is_none())
            .map(|(_, t, _)| t.to_string())
            .collect()
    }

    #[test]
    fn selection_filters() {
        let c = cat(SMALL);
        let all = Selection::default();
        assert_eq!(
            selected(&c, &all),
            ["13.9.0", "13.0.0-alpha1", "3.1-2", "3.0-1"],
            "yanked skipped"
        );
        let y = Selection {
            include_yanked: true,
            ..Default::default()
        };
        assert_eq!(selected(&c, &y).len(), 5);
        let ch = Selection {
            channels: vec!["stable".into(), "lts".into()],
            include_yanked: true,
            ..Default::default()
        };
        assert_eq!(selected(&c, &ch), ["13.9.0", "12.1.0", "3.1-2"]);
        let min = Selection {
            min_version: Some(v("13.0.0")),
            ..Default::default()
        };
        assert_eq!(selected(&c, &min), ["13.9.0", "3.1-2", "3.0-1"]);
        let min3 = Selection {
            min_version: Some(v("3.1-1")),
            ..Default::default()
        };
        assert_eq!(selected(&c, &min3), ["3.1-2"]);
        let list = Selection {
            versions: ["3.0-1".to_string(), "12.1.0".to_string()].into(),
            ..Default::default()
        };
        assert_eq!(selected(&c, &list), ["3.0-1"]);
        assert_eq!(
            list.check(
                Section::Airflow2,
                "12.1.0",
                c.entry(Section::Airflow2, "12.1.0").unwrap()
            ),
            Some(Skip::Yanked)
        );
    }

    #[test]
    fn merge_keeps_their_entries_and_fields() {
        let source = cat(SMALL);
        let theirs = cat(&format!(
            r#"{{"runtimeVersions": {{
                  "99.0.0": {{"metadata": {{"channel": "stable"}}, "sha256": "{a}"}},
                  "13.9.0": {{"metadata": {{"channel": "old"}}, "sha256": "{a}", "x-note": "hand"}},
                  "12.1.0": {{"metadata": {{"channel": "lts"}}, "sha256": "{b}"}}
                }},
                "x-their-top": 1,
                "runtimeVersionsV2Future": {{}}
            }}"#,
            a = d('a'),
            b = d('b')
        ));
        let mut ours = HashMap::new();
        let mut e = source.entry(Section::Airflow2, "13.9.0").unwrap().clone();
        DigestField::default().set(&mut e, &d('c')).unwrap();
        ours.insert((Section::Airflow2, "13.9.0".to_string()), e);
        let m = merge(&source, &ours, Some(&theirs));
        let r = m.root["runtimeVersions"].as_object().unwrap();
        let tags: Vec<_> = r.keys().cloned().collect();
        // Source order; the filtered-out, never-imported alpha is absent; theirs-only appended.
        assert_eq!(tags, ["13.9.0", "12.1.0", "99.0.0"]);
        assert_eq!(r["13.9.0"]["sha256"], d('c'), "ours wins for our entry");
        assert_eq!(
            r["13.9.0"]["metadata"]["channel"], "stable",
            "source metadata wins"
        );
        assert_eq!(r["13.9.0"]["x-note"], "hand", "their extra field kept");
        assert_eq!(
            r["12.1.0"]["sha256"],
            d('b'),
            "not imported this run: theirs untouched"
        );
        assert_eq!(r["99.0.0"]["sha256"], d('a'), "hand-added version kept");
        assert_eq!(m.root["x-their-top"], 1);
        assert!(m.root.contains_key("runtimeVersionsV2Future"));
        assert_eq!(m.root.keys().next().unwrap(), "version");
        assert_eq!(
            m.root["runtimeVersionsV3"].as_object().unwrap().len(),
            0,
            "not selected, not theirs"
        );
    }

    #[test]
    fn size_limit() {
        assert!(check_size(CONFIGMAP_LIMIT, 0).is_ok());
        let e = check_size(CONFIGMAP_LIMIT, 1).unwrap_err();
        assert!(
            e.message.contains("1048576 bytes) a ConfigMap may hold"),
            "{}",
            e.message
        );
        assert!(e.message.contains("plus 1 bytes"), "{}", e.message);
        assert!(e.hint.unwrap().contains("--min-version"));
        let e = check_size(2_000_000, 0).unwrap_err();
        assert!(
            e.message
                .starts_with("the enriched catalog is 2000000 bytes,"),
            "{}",
            e.message
        );
    }
}
