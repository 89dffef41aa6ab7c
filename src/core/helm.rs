//! Reading the platform's Helm release from its storage Secret, without the helm binary.
//!
//! Helm 3 stores each revision in a Secret `sh.helm.release.v1.<release>.v<N>` (type
//! `helm.sh/release.v1`, labels `owner=helm`, `name=<release>`, `status`, `version`) whose
//! `data.release` is base64 of gzip of the release JSON. The API's own base64 layer is removed by
//! the client, so the bytes handed over here are still Helm's base64 text. The release JSON holds
//! `chart.metadata.version` and `config`, the user-supplied values (not merged with the chart's
//! defaults): exactly what a values file says.

use std::io::Read;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;

use crate::error::{Error, Result};

/// Label selector for the deployed revision(s) of a release.
pub(crate) fn selector(release: &str) -> String {
    format!("owner=helm,name={release},status=deployed")
}

/// What the plugin needs from a Helm release.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Release {
    pub(crate) name: String,
    pub(crate) revision: u64,
    pub(crate) chart_name: String,
    pub(crate) chart_version: String,
    /// The user-supplied values (`helm get values`).
    pub(crate) values: Value,
    /// The Secret it was read from.
    pub(crate) secret: String,
}

/// The most a decompressed Helm release may be. The platform chart's release (manifest, chart
/// templates and values) is a few MiB; 64 MiB is far past any real one and keeps a gzip bomb in a
/// Secret from exhausting memory.
pub(crate) const MAX_RELEASE_BYTES: usize = 64 << 20;

/// Decodes Helm's `base64(gzip(json))` (or `base64(json)`, which Helm also accepts).
pub(crate) fn decode(payload: &[u8], secret: &str) -> Result<Release> {
    let bad = |why: String| {
        Error::new(format!(
            "cannot decode the Helm release in Secret {secret}: {why}"
        ))
        .hint("check it with `helm history` / `helm get values`; pass --chart-version to decide without it")
    };
    let text: Vec<u8> = payload
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&text)
        .map_err(|e| bad(format!("not base64 ({e})")))?;
    let json = if raw.starts_with(&[0x1f, 0x8b, 0x08]) {
        // Bounded: a Secret holds at most 1 MiB, but gzip inflates it a thousandfold; the read
        // stops one byte past the limit.
        let out = read_at_most(
            flate2::read::GzDecoder::new(raw.as_slice()),
            MAX_RELEASE_BYTES,
        )
        .map_err(|e| bad(format!("gzip ({e})")))?;
        if out.len() > MAX_RELEASE_BYTES {
            return Err(bad(format!(
                "the release is larger than {} MiB once decompressed; the read stopped there",
                MAX_RELEASE_BYTES >> 20
            )));
        }
        out
    } else {
        raw
    };
    let v: Value =
        serde_json::from_slice(&json).map_err(|e| bad(format!("not release JSON ({e})")))?;
    let chart_version = v
        .pointer("/chart/metadata/version")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no chart.metadata.version".into()))?
        .to_string();
    Ok(Release {
        name: v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        revision: v.get("version").and_then(Value::as_u64).unwrap_or(0),
        chart_name: v
            .pointer("/chart/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        chart_version,
        values: v.get("config").cloned().unwrap_or(Value::Null),
        secret: secret.to_string(),
    })
}

/// Reads `r` to its end, or to one byte past `limit`, whichever comes first: a result longer
/// than `limit` means "too large", and nothing past that byte was read.
fn read_at_most(r: impl Read, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(limit as u64 + 1).read_to_end(&mut out)?;
    Ok(out)
}

/// The revision number of a release Secret: its `version` label, or the `.v<N>` name suffix.
pub(crate) fn revision_of(s: &Secret) -> Option<u64> {
    let from_label = s
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("version"))
        .and_then(|v| v.parse().ok());
    from_label.or_else(|| {
        s.metadata
            .name
            .as_deref()?
            .rsplit_once(".v")?
            .1
            .parse()
            .ok()
    })
}

/// The newest deployed revision of `release` among listed Secrets (normally there is one
/// `deployed` at a time; after a failed upgrade an older one may still carry the label).
pub(crate) fn latest<'a>(secrets: &'a [Secret], release: &str) -> Option<&'a Secret> {
    secrets
        .iter()
        .filter(|s| {
            let l = s.metadata.labels.clone().unwrap_or_default();
            l.get("owner").map(String::as_str) == Some("helm")
                && l.get("name").map(String::as_str) == Some(release)
                && l.get("status").map(String::as_str) == Some("deployed")
        })
        .max_by_key(|s| revision_of(s).unwrap_or(0))
}

/// Picks and decodes the newest deployed revision.
pub(crate) fn release_from(secrets: &[Secret], release: &str, namespace: &str) -> Result<Release> {
    let s = latest(secrets, release).ok_or_else(|| {
        Error::new(format!(
            "no deployed Helm release {release:?} in namespace {namespace:?} (no Secret labelled owner=helm,name={release},status=deployed)"
        ))
        .hint("check `helm list -n NAMESPACE`; pass --chart-version to decide the schema without it")
    })?;
    let name = s.metadata.name.clone().unwrap_or_default();
    let payload = s
        .data
        .as_ref()
        .and_then(|d| d.get("release"))
        .ok_or_else(|| Error::new(format!("Helm release Secret {name} has no data.release")))?;
    decode(&payload.0, &name)
}

/// Builds the payload Helm writes, for tests and fixtures: base64(gzip(json)).
#[cfg(test)]
pub(crate) fn encode(release_json: &Value) -> String {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(release_json.to_string().as_bytes())
        .expect("gzip");
    base64::engine::general_purpose::STANDARD.encode(gz.finish().expect("gzip"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use serde_json::json;

    fn secret(name: &str, release: &str, rev: u64, status: &str, payload: String) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some(name.into());
        s.metadata.labels = Some(
            [
                ("owner", "helm"),
                ("name", release),
                ("status", status),
                ("version", &rev.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        s.data = Some(
            [("release".to_string(), ByteString(payload.into_bytes()))]
                .into_iter()
                .collect(),
        );
        s
    }

    fn release_json(version: &str, config: Value) -> Value {
        json!({"name": "astronomer", "version": 3, "chart": {"metadata": {"name": "astronomer", "version": version}}, "config": config})
    }

    #[test]
    fn decodes_helm_payloads() {
        let cfg = json!({"astronomer": {"houston": {"config": {"deployments": {"customImageShaEnabled": true}}}}});
        let r = decode(encode(&release_json("0.37.4", cfg.clone())).as_bytes(), "s").unwrap();
        assert_eq!(r.chart_version, "0.37.4");
        assert_eq!(r.values, cfg);
        assert_eq!(r.revision, 3);
        // base64 of plain JSON, as Helm's decoder also accepts
        let plain = base64::engine::general_purpose::STANDARD
            .encode(release_json("1.2.0", json!({})).to_string());
        assert_eq!(
            decode(plain.as_bytes(), "s").unwrap().chart_version,
            "1.2.0"
        );
    }

    #[test]
    fn decodes_the_bed_fixture() {
        let fixture: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/platform/helm-release-astronomer.v1.json"
        ))
        .unwrap();
        let r = decode(
            encode(&fixture).as_bytes(),
            "sh.helm.release.v1.astronomer.v1",
        )
        .unwrap();
        assert_eq!(r.chart_version, "0.37.4");
        assert_eq!(
            r.values
                .pointer("/astronomer/houston/config/deployments/manualReleaseNames"),
            Some(&json!(true))
        );
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![b' '; 1 << 20];
        for _ in 0..(MAX_RELEASE_BYTES >> 20) + 2 {
            gz.write_all(&zeros).unwrap();
        }
        let compressed = gz.finish().unwrap();
        let payload = base64::engine::general_purpose::STANDARD.encode(&compressed);
        assert!(payload.len() < 1 << 20, "fits a Secret: {}", payload.len());
        let e = decode(payload.as_bytes(), "sh.helm.release.v1.x.v9").unwrap_err();
        assert!(
            e.message.contains("larger than 64 MiB once decompressed"),
            "{}",
            e.message
        );
        // Bounded by what was read, not by the clock: the bounded read decode uses pulls one
        // byte past its limit out of the decompressor and no more (here a 1 MiB limit, to keep
        // the test short; the bomb holds 66 MiB).
        let pulled = std::rc::Rc::new(std::cell::Cell::new(0u64));
        let counted = Counted {
            inner: flate2::read::GzDecoder::new(compressed.as_slice()),
            n: pulled.clone(),
        };
        let out = read_at_most(counted, 1 << 20).unwrap();
        assert_eq!(out.len(), (1 << 20) + 1);
        assert_eq!(pulled.get(), (1 << 20) + 1);
    }

    /// A reader that counts the bytes pulled through it.
    struct Counted<R> {
        inner: R,
        n: std::rc::Rc<std::cell::Cell<u64>>,
    }

    impl<R: std::io::Read> std::io::Read for Counted<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let k = self.inner.read(buf)?;
            self.n.set(self.n.get() + k as u64);
            Ok(k)
        }
    }

    #[test]
    fn bad_payloads_are_clear_errors() {
        for (p, why) in [
            ("!!!", "not base64"),
            ("H4sIAAAA", "gzip"),
            (
                &base64::engine::general_purpose::STANDARD.encode("{}") as &str,
                "chart.metadata.version",
            ),
            (
                &base64::engine::general_purpose::STANDARD.encode("nope") as &str,
                "not release JSON",
            ),
        ] {
            let e = decode(p.as_bytes(), "sh.helm.release.v1.x.v1").unwrap_err();
            assert!(e.message.contains(why), "{p}: {}", e.message);
            assert!(e.message.contains("sh.helm.release.v1.x.v1"));
        }
    }

    #[test]
    fn picks_the_newest_deployed_revision() {
        let p = |v: &str| encode(&release_json(v, json!({})));
        let secrets = vec![
            secret(
                "sh.helm.release.v1.astronomer.v9",
                "astronomer",
                9,
                "superseded",
                p("0.9.0"),
            ),
            secret(
                "sh.helm.release.v1.astronomer.v2",
                "astronomer",
                2,
                "deployed",
                p("1.0.0"),
            ),
            secret(
                "sh.helm.release.v1.astronomer.v10",
                "astronomer",
                10,
                "deployed",
                p("2.1.0"),
            ),
            secret(
                "sh.helm.release.v1.other.v11",
                "other",
                11,
                "deployed",
                p("3.0.0"),
            ),
        ];
        let r = release_from(&secrets, "astronomer", "ns").unwrap();
        assert_eq!(
            r.chart_version, "2.1.0",
            "v10 beats v2 (numeric, not lexical)"
        );
        assert_eq!(r.secret, "sh.helm.release.v1.astronomer.v10");
        let e = release_from(&secrets, "missing", "ns").unwrap_err();
        assert!(e.message.contains("no deployed Helm release \"missing\""));
    }

    #[test]
    fn revision_from_name_without_label() {
        let mut s = secret(
            "sh.helm.release.v1.a.v12",
            "a",
            0,
            "deployed",
            String::new(),
        );
        s.metadata.labels.as_mut().unwrap().remove("version");
        assert_eq!(revision_of(&s), Some(12));
    }
}
