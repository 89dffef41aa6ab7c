//! The platform's upgrade of an Airflow Deployment, as the tests need it: Houston (through
//! Commander) re-renders the release with the airflow chart and `helm upgrade`s it.
//!
//! What that does to the objects this tool writes (https://www.astronomer.io/docs/astro-private-cloud/create-deployment-sha: Houston renders
//! every create and update of a Deployment; Helm 3's three-way strategic merge, helm.sh/docs "Helm 3: three-way strategic
//! merge patches"): the fields the chart renders are set to the new rendering — the Runtime
//! image of every container (main, init, sidecar) and the whole `pod_template_file.yaml` of
//! `<release>-config` — and fields the chart does not render, such as this tool's
//! `astro-sha.github.io/original-images` annotation, are left as they are live. Here the same
//! is done with a strategic merge patch (containers merged by name) per workload and a merge
//! patch of the ConfigMap's data key, so the annotation survives exactly as it does on a real
//! platform.

use super::{Bed, Out};

/// What an upgrade changed, for the test's own checks.
#[derive(Debug, Default)]
pub struct Upgraded {
    /// `kind/name/container` of every re-rendered container.
    pub containers: Vec<String>,
    /// Whether the pod template of `<release>-config` was re-rendered.
    pub pod_template: bool,
}

impl Bed {
    /// Re-renders release `release` in `ns` with `new_image` for every container whose image is a
    /// build of `runtime_repo` (`registry/repository`, tag or digest after it), in Deployments,
    /// StatefulSets, CronJobs and the pod template, keeping every annotation.
    pub fn houston_upgrade(
        &self,
        ns: &str,
        release: &str,
        runtime_repo: &str,
        new_image: &str,
    ) -> Upgraded {
        let is_runtime = |image: &str| {
            image
                .strip_prefix(runtime_repo)
                .is_some_and(|rest| rest.starts_with(':') || rest.starts_with('@'))
        };
        let mut done = Upgraded::default();
        let selector = format!("release={release}");
        for (kind, spec_path) in [
            ("deployments", &["spec", "template", "spec"][..]),
            ("statefulsets", &["spec", "template", "spec"][..]),
            (
                "cronjobs.batch",
                &["spec", "jobTemplate", "spec", "template", "spec"][..],
            ),
        ] {
            let list = self.get_json(&[kind, "-n", ns, "-l", &selector]);
            for item in list["items"].as_array().into_iter().flatten() {
                let name = item["metadata"]["name"].as_str().unwrap_or_default();
                let spec = spec_path.iter().fold(item, |v, k| &v[*k]);
                let mut patch_spec = serde_json::Map::new();
                for list_key in ["initContainers", "containers"] {
                    let changed: Vec<serde_json::Value> = spec[list_key]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|c| c["image"].as_str().is_some_and(is_runtime))
                        .map(|c| serde_json::json!({"name": c["name"], "image": new_image}))
                        .collect();
                    for c in &changed {
                        done.containers.push(format!(
                            "{kind}/{name}/{}",
                            c["name"].as_str().unwrap_or_default()
                        ));
                    }
                    if !changed.is_empty() {
                        patch_spec.insert(list_key.into(), changed.into());
                    }
                }
                if patch_spec.is_empty() {
                    continue;
                }
                let patch = spec_path.iter().rev().fold(
                    serde_json::Value::Object(patch_spec),
                    |inner, k| serde_json::json!({ *k: inner }),
                );
                let o = self.kubectl(&[
                    "patch",
                    kind,
                    name,
                    "-n",
                    ns,
                    "--type=strategic",
                    "-p",
                    &patch.to_string(),
                ]);
                assert!(o.ok(), "upgrade of {kind}/{name}: {}", o.stderr);
            }
        }
        done.pod_template = self.rerender_pod_template(ns, release, &is_runtime, new_image);
        done
    }

    /// The chart renders `pod_template_file.yaml` whole; on the live text that is every
    /// Runtime `image:` line taking the new image, the rest as it was rendered before.
    fn rerender_pod_template(
        &self,
        ns: &str,
        release: &str,
        is_runtime: &dyn Fn(&str) -> bool,
        new_image: &str,
    ) -> bool {
        let name = format!("{release}-config");
        let cm = self.kubectl(&["get", "configmap", &name, "-n", ns, "-o", "json"]);
        if !cm.ok() {
            return false;
        }
        let cm: serde_json::Value = serde_json::from_str(&cm.stdout).expect("configmap json");
        let Some(text) = cm["data"]["pod_template_file.yaml"].as_str() else {
            return false;
        };
        let rendered: Vec<String> = text
            .lines()
            .map(|line| {
                let trimmed = line.trim_start();
                let Some(rest) = trimmed
                    .strip_prefix("image: ")
                    .or_else(|| trimmed.strip_prefix("- image: "))
                else {
                    return line.to_string();
                };
                let image = rest.split_whitespace().next().unwrap_or_default();
                if is_runtime(image) {
                    line.replacen(image, new_image, 1)
                } else {
                    line.to_string()
                }
            })
            .collect();
        let mut new_text = rendered.join("\n");
        if text.ends_with('\n') {
            new_text.push('\n');
        }
        if new_text == text {
            return false;
        }
        let patch = serde_json::json!({"data": {"pod_template_file.yaml": new_text}});
        let o: Out = self.kubectl(&[
            "patch",
            "configmap",
            &name,
            "-n",
            ns,
            "--type=merge",
            "-p",
            &patch.to_string(),
        ]);
        assert!(o.ok(), "upgrade of configmap/{name}: {}", o.stderr);
        true
    }
}
