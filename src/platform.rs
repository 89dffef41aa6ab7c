//! The Astronomer platform around the Airflow Deployments: where Houston runs, and whether its
//! digest feature is on. Houston is found by label (`component=houston`) in one list call.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};

use crate::cluster::Cluster;
use crate::error::{Error, Result};

pub struct Houston {
    pub namespace: String,
    /// The platform's Helm release name (label `release`).
    pub release: String,
}

/// Finds Houston's Deployment, in `namespace` if given, else anywhere.
pub async fn find_houston(cluster: &Cluster, namespace: Option<&str>) -> Result<Option<Houston>> {
    let api: Api<Deployment> = match namespace {
        Some(ns) => Api::namespaced(cluster.client.clone(), ns),
        None => Api::all(cluster.client.clone()),
    };
    let list = api
        .list(&ListParams::default().labels("component=houston"))
        .await
        .map_err(|e| cluster.err(e, "list", "deployments.apps", namespace))?;
    let mut found: Vec<Houston> = list
        .items
        .into_iter()
        .map(|d| Houston {
            namespace: d.metadata.namespace.clone().unwrap_or_default(),
            release: d
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("release"))
                .cloned()
                .unwrap_or_else(|| "astronomer".into()),
        })
        .collect();
    if found.len() > 1 {
        let names: Vec<String> = found.iter().map(|h| h.namespace.clone()).collect();
        return Err(Error::new(format!(
            "found Houston in several namespaces: {}",
            names.join(", ")
        ))
        .hint("pass --platform-namespace to pick the platform"));
    }
    Ok(found.pop())
}

/// The feature flag in Houston's config YAML (`local-production.yaml` or the values'
/// `astronomer.houston.config` subtree): the nested 2.x key wins over the flat one.
pub fn feature_flag(config: &serde_yaml_ng::Value) -> Option<bool> {
    let deployments = config.get("deployments")?;
    let nested = deployments
        .get("runtimeManagement")
        .and_then(|r| r.get("customImageSha"))
        .and_then(|c| c.get("enabled"))
        .and_then(serde_yaml_ng::Value::as_bool);
    nested.or_else(|| {
        deployments
            .get("customImageShaEnabled")
            .and_then(serde_yaml_ng::Value::as_bool)
    })
}

/// Whether Houston runs with the feature on, from `<release>-houston-config`. `None` when it
/// cannot be told (no Houston, no rights): callers then say nothing rather than guess.
pub async fn houston_feature_enabled(cluster: &Cluster) -> Option<bool> {
    let houston = find_houston(cluster, None).await.ok().flatten()?;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), &houston.namespace);
    let cm = api
        .get_opt(&format!("{}-houston-config", houston.release))
        .await
        .ok()
        .flatten()?;
    let text = cm.data.as_ref()?.get("local-production.yaml")?;
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).ok()?;
    Some(feature_flag(&v).unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_schemas() {
        let flat: serde_yaml_ng::Value =
            serde_yaml_ng::from_str("deployments:\n  customImageShaEnabled: true\n").unwrap();
        assert_eq!(feature_flag(&flat), Some(true));
        let nested: serde_yaml_ng::Value =
            serde_yaml_ng::from_str("deployments:\n  customImageShaEnabled: true\n  runtimeManagement:\n    customImageSha:\n      enabled: false\n").unwrap();
        assert_eq!(feature_flag(&nested), Some(false));
        let none: serde_yaml_ng::Value = serde_yaml_ng::from_str("deployments: {}\n").unwrap();
        assert_eq!(feature_flag(&none), None);
    }
}
