//! The KubernetesExecutor pod template (`pod_template_file.yaml` in `<release>-config`).
//!
//! It is YAML text that people read and diff, so a pin edits only the `image:` values in place and
//! leaves every other byte (comments, order, quoting) as it was. Images are found by parsing; the
//! rewrite is textual and checked by re-parsing.

use serde_yaml_ng::Value;

use crate::core::container::{ContainerImage, Role};

/// Container images in a pod template (a Pod manifest, or a bare pod spec). An error (with line
/// and column) when the YAML does not parse: callers must say so rather than show nothing.
pub(crate) fn parse(text: &str) -> Result<Vec<ContainerImage>, String> {
    let doc = serde_yaml_ng::from_str::<Value>(text).map_err(|e| e.to_string())?;
    Ok(images_of(&doc))
}

/// Like `parse`, treating an unparsable template as holding no images.
pub(crate) fn images(text: &str) -> Vec<ContainerImage> {
    parse(text).unwrap_or_default()
}

fn images_of(doc: &Value) -> Vec<ContainerImage> {
    let spec = doc.get("spec").unwrap_or(doc);
    let mut out = vec![];
    for (key, role) in [
        ("initContainers", Role::Init),
        ("containers", Role::Container),
    ] {
        if let Some(list) = spec.get(key).and_then(Value::as_sequence) {
            for (i, c) in list.iter().enumerate() {
                let name = c
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if let Some(image) = c.get("image").and_then(Value::as_str) {
                    out.push(ContainerImage {
                        container: name,
                        role,
                        index: i,
                        image: image.to_string(),
                    });
                }
            }
        }
    }
    out
}

/// Replaces image values `from -> to` in the template text, touching nothing else. Returns the new
/// text, or an error naming the image that could not be found as a plain `image:` line.
pub(crate) fn replace_images(text: &str, changes: &[(String, String)]) -> Result<String, String> {
    let mut out = String::with_capacity(text.len() + 128);
    let mut replaced = vec![false; changes.len()];
    for line in text.split_inclusive('\n') {
        let mut new_line = None;
        if let Some((prefix, value, quote, rest)) = split_image_line(line) {
            for (i, (from, to)) in changes.iter().enumerate() {
                if value == from {
                    new_line = Some(format!("{prefix}{quote}{to}{quote}{rest}"));
                    replaced[i] = true;
                    break;
                }
            }
        }
        out.push_str(new_line.as_deref().unwrap_or(line));
    }
    if let Some(i) = replaced.iter().position(|r| !r) {
        return Err(format!(
            "image {:?} is not on a plain `image:` line of the pod template",
            changes[i].0
        ));
    }
    // Check the edit did what was meant: same containers, only the images changed.
    let before = images(text);
    let after = images(&out);
    let expected: Vec<String> = before
        .iter()
        .map(|c| {
            changes
                .iter()
                .find(|(f, _)| *f == c.image)
                .map(|(_, t)| t.clone())
                .unwrap_or_else(|| c.image.clone())
        })
        .collect();
    let got: Vec<String> = after.iter().map(|c| c.image.clone()).collect();
    if before.len() != after.len() || expected != got {
        return Err("the edited pod template does not parse to the intended images".into());
    }
    Ok(out)
}

/// Splits `   image: "repo:tag"  # comment\n` into (prefix up to the value, value, quote, rest).
fn split_image_line(line: &str) -> Option<(&str, &str, &str, &str)> {
    let trimmed = line.trim_start();
    let body = trimmed
        .strip_prefix("- ")
        .map(str::trim_start)
        .unwrap_or(trimmed);
    let after_key = body.strip_prefix("image:")?;
    let value_start =
        line.len() - after_key.len() + (after_key.len() - after_key.trim_start().len());
    let prefix = &line[..value_start];
    let rest_all = &line[value_start..];
    let (quote, inner) = match rest_all.chars().next() {
        Some('"' | '\'') => (&rest_all[..1], &rest_all[1..]),
        _ => ("", rest_all),
    };
    let end = if quote.is_empty() {
        inner
            .find(|c: char| c.is_whitespace())
            .unwrap_or(inner.len())
    } else {
        inner.find(quote.chars().next()?)?
    };
    let value = &inner[..end];
    let rest = &inner[end + quote.len()..];
    if value.is_empty() {
        return None;
    }
    Some((prefix, value, quote, rest))
}

/// The pull secrets and ServiceAccount a KubernetesExecutor pod template names
/// (`spec.imagePullSecrets`, `spec.serviceAccountName`), read leniently: a template that does not
/// parse names none (its images are reported by the inventory anyway).
pub(crate) fn pull_auth(text: &str) -> (Vec<String>, Option<String>) {
    let Ok(doc) = serde_yaml_ng::from_str::<Value>(text) else {
        return (vec![], None);
    };
    let spec = doc.get("spec").unwrap_or(&doc);
    let secrets = spec
        .get("imagePullSecrets")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str))
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect();
    let sa = spec
        .get("serviceAccountName")
        .or_else(|| spec.get("serviceAccount"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    (secrets, sa)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"# KubernetesExecutor pod template
---
apiVersion: v1
kind: Pod
metadata:
  name: placeholder-name   # replaced by Airflow
spec:
  initContainers:
    - name: wait
      image: "quay.io/astronomer/astro-runtime:12.1.0"
  containers:
    - image: quay.io/astronomer/astro-runtime:12.1.0 # the worker
      name: base
    - name: statsd
      image: 'quay.io/prometheus/statsd-exporter:v0.26.1'
  restartPolicy: Never
"#;

    #[test]
    fn finds_images_by_role() {
        let imgs = images(TEMPLATE);
        assert_eq!(imgs.len(), 3);
        assert_eq!(imgs[0].role, Role::Init);
        assert_eq!(imgs[1].container, "base");
        assert_eq!(imgs[2].image, "quay.io/prometheus/statsd-exporter:v0.26.1");
    }

    #[test]
    fn replaces_only_the_image_values() {
        let to = "quay.io/astronomer/astro-runtime:12.1.0@sha256:aaaa".to_string();
        let out = replace_images(
            TEMPLATE,
            &[("quay.io/astronomer/astro-runtime:12.1.0".into(), to.clone())],
        )
        .unwrap();
        let expected = TEMPLATE.replace("quay.io/astronomer/astro-runtime:12.1.0", &to);
        assert_eq!(out, expected);
        // and back, byte for byte
        let back = replace_images(
            &out,
            &[(to, "quay.io/astronomer/astro-runtime:12.1.0".into())],
        )
        .unwrap();
        assert_eq!(back, TEMPLATE);
    }

    #[test]
    fn unparsable_templates_are_reported_with_a_position() {
        let err =
            parse("spec:\n  containers:\n    - envFrom:\n      []\n      env: []\n").unwrap_err();
        assert!(err.contains("line"), "{err}");
    }

    #[test]
    fn refuses_an_image_it_cannot_see() {
        let err = replace_images(TEMPLATE, &[("nope:1".into(), "x".into())]).unwrap_err();
        assert!(err.contains("nope:1"));
    }

    #[test]
    fn pod_template_names_its_secrets_and_service_account() {
        let t = "apiVersion: v1\nkind: Pod\nspec:\n  serviceAccountName: r-worker\n  imagePullSecrets:\n    - name: r-registry\n  containers:\n    - name: base\n      image: x\n";
        assert_eq!(
            pull_auth(t),
            (vec!["r-registry".to_string()], Some("r-worker".to_string()))
        );
        assert_eq!(pull_auth(": not yaml ["), (vec![], None));
    }
}
