//! The slim shapes the fleet's lists are read into. A page of a list is deserialized straight
//! into these (serde skips every field not named here without building it: managedFields, env,
//! affinity, volumes, probes, resources, conditions), then turned into the model's
//! `k8s_openapi` types carrying only what the model reads (see `core::inventory`): names,
//! namespace, labels, the records annotation, resourceVersion, the pod selector, container
//! names and images, pull secrets and the ServiceAccount, pod image IDs, the pod template key
//! of a ConfigMap. A 16 KB pod becomes a few hundred bytes before the next page is asked for,
//! so a list costs one page of JSON plus the reduced fleet, however large the fleet.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, LocalObjectReference, PodSpec, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{DynamicObject, TypeMeta};
use serde::Deserialize;

use crate::core::inventory::{PodImages, Role};
use crate::core::names::{
    LEGACY_ORIGINAL_IMAGES_ANNOTATION, ORIGINAL_IMAGES_ANNOTATION, POD_TEMPLATE_KEY,
};

/// The part of `metadata` the model reads.
#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    resource_version: Option<String>,
}

impl Meta {
    /// Annotations keep their keys (a patch adds to an existing map or creates it, see
    /// `core::edit`), but only the records annotation keeps its value (under its current key and
    /// under the key of builds before v0.1.0, which unpin still reads): others, such as
    /// `kubectl.kubernetes.io/last-applied-configuration` (a copy of the whole object), are
    /// never read.
    fn into_object_meta(self) -> ObjectMeta {
        let annotations = self.annotations.map(|a| {
            a.into_iter()
                .map(|(k, v)| {
                    let records =
                        k == ORIGINAL_IMAGES_ANNOTATION || k == LEGACY_ORIGINAL_IMAGES_ANNOTATION;
                    let v = if records { v } else { String::new() };
                    (k, v)
                })
                .collect()
        });
        ObjectMeta {
            name: self.name,
            namespace: self.namespace,
            labels: self.labels,
            annotations,
            resource_version: self.resource_version,
            ..Default::default()
        }
    }

    pub(crate) fn key(&self) -> (String, String) {
        (
            self.namespace.clone().unwrap_or_default(),
            self.name.clone().unwrap_or_default(),
        )
    }
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
struct SlimContainer {
    name: String,
    image: Option<String>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub(crate) struct NameRef {
    pub(crate) name: String,
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase", default)]
struct SlimPodSpec {
    init_containers: Option<Vec<SlimContainer>>,
    containers: Vec<SlimContainer>,
    image_pull_secrets: Option<Vec<NameRef>>,
    service_account_name: Option<String>,
    service_account: Option<String>,
}

fn containers(list: Vec<SlimContainer>) -> Vec<Container> {
    list.into_iter()
        .map(|c| Container {
            name: c.name,
            image: c.image,
            ..Default::default()
        })
        .collect()
}

impl SlimPodSpec {
    fn into_pod_spec(self) -> PodSpec {
        PodSpec {
            init_containers: self.init_containers.map(containers),
            containers: containers(self.containers),
            image_pull_secrets: self.image_pull_secrets.map(|l| {
                l.into_iter()
                    .map(|r| LocalObjectReference { name: r.name })
                    .collect()
            }),
            service_account_name: self.service_account_name,
            service_account: self.service_account,
            ..Default::default()
        }
    }
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase", default)]
struct SlimSelector {
    match_labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
struct SlimTemplate {
    spec: Option<SlimPodSpec>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
struct SlimWorkloadSpec {
    selector: SlimSelector,
    template: SlimTemplate,
}

impl SlimWorkloadSpec {
    fn parts(self) -> (LabelSelector, PodTemplateSpec) {
        (
            LabelSelector {
                match_labels: self.selector.match_labels,
                ..Default::default()
            },
            PodTemplateSpec {
                metadata: None,
                spec: self.template.spec.map(SlimPodSpec::into_pod_spec),
            },
        )
    }
}

/// A Deployment or a StatefulSet: metadata, selector, pod template.
#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub(crate) struct SlimWorkload {
    metadata: Meta,
    spec: SlimWorkloadSpec,
}

impl SlimWorkload {
    pub(crate) fn into_deployment(self) -> Deployment {
        let (selector, template) = self.spec.parts();
        Deployment {
            metadata: self.metadata.into_object_meta(),
            spec: DeploymentSpec {
                selector,
                template,
                ..Default::default()
            },
            status: None,
        }
    }

    pub(crate) fn into_statefulset(self) -> StatefulSet {
        let (selector, template) = self.spec.parts();
        StatefulSet {
            metadata: self.metadata.into_object_meta(),
            spec: StatefulSetSpec {
                selector,
                template,
                ..Default::default()
            },
            status: None,
        }
    }
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase", default)]
struct SlimJobTemplate {
    spec: SlimJobSpec,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
struct SlimJobSpec {
    template: SlimTemplate,
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase", default)]
struct SlimCronJobSpec {
    job_template: SlimJobTemplate,
}

/// A CronJob (batch/v1 or v1beta1): metadata and the job's pod template.
#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct SlimCronJob {
    api_version: String,
    kind: String,
    metadata: Meta,
    spec: SlimCronJobSpec,
}

impl SlimCronJob {
    /// The `DynamicObject` the model reads (`/spec/jobTemplate/spec/template/spec`).
    pub(crate) fn into_dynamic(self) -> DynamicObject {
        let spec = self
            .spec
            .job_template
            .spec
            .template
            .spec
            .map(SlimPodSpec::into_pod_spec)
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or(serde_json::Value::Null);
        DynamicObject {
            types: Some(TypeMeta {
                api_version: self.api_version,
                kind: self.kind,
            }),
            metadata: self.metadata.into_object_meta(),
            data: serde_json::json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}}),
        }
    }
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase", default)]
struct SlimContainerStatus {
    name: String,
    #[serde(rename = "imageID")]
    image_id: String,
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase", default)]
struct SlimPodStatus {
    container_statuses: Option<Vec<SlimContainerStatus>>,
    init_container_statuses: Option<Vec<SlimContainerStatus>>,
}

/// A pod: where it is, its labels (to match a workload's selector), and the image ID each
/// container runs.
#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub(crate) struct SlimPod {
    metadata: Meta,
    status: Option<SlimPodStatus>,
}

impl SlimPod {
    /// The model's pod: no `k8s_openapi::Pod` (2.4 KB before any field is filled) is built.
    pub(crate) fn into_pod_images(self) -> PodImages {
        let mut image_ids = vec![];
        if let Some(st) = self.status {
            for (role, list) in [
                (Role::Container, st.container_statuses),
                (Role::Init, st.init_container_statuses),
            ] {
                for cs in list.into_iter().flatten() {
                    image_ids.push((role, cs.name, cs.image_id));
                }
            }
        }
        PodImages {
            namespace: self.metadata.namespace.unwrap_or_default(),
            name: self.metadata.name.unwrap_or_default(),
            labels: self.metadata.labels.unwrap_or_default(),
            image_ids,
        }
    }
}

/// A ConfigMap: only the KubernetesExecutor pod template is read (`airflow.cfg` and the rest
/// are dropped); a ConfigMap without it is skipped.
#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub(crate) struct SlimConfigMap {
    metadata: Meta,
    data: Option<BTreeMap<String, String>>,
}

impl SlimConfigMap {
    pub(crate) fn into_pod_template(self) -> Option<ConfigMap> {
        let text = self.data?.remove(POD_TEMPLATE_KEY)?;
        Some(ConfigMap {
            metadata: self.metadata.into_object_meta(),
            data: Some(BTreeMap::from([(POD_TEMPLATE_KEY.to_string(), text)])),
            ..Default::default()
        })
    }
}

/// A ServiceAccount: where it is and the pull secrets it names.
#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct SlimServiceAccount {
    pub(crate) metadata: Meta,
    pub(crate) image_pull_secrets: Option<Vec<NameRef>>,
}

/// A docker-config Secret: where it is and its `.dockerconfigjson` (base64, as served).
#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub(crate) struct SlimSecret {
    pub(crate) metadata: Meta,
    pub(crate) data: Option<BTreeMap<String, k8s_openapi::ByteString>>,
}

impl SlimSecret {
    /// The `.dockerconfigjson` bytes, the only key read.
    pub(crate) fn docker_config(mut self) -> ((String, String), Option<Vec<u8>>) {
        let v = self
            .data
            .as_mut()
            .and_then(|d| d.remove(".dockerconfigjson"))
            .map(|b| b.0);
        (self.metadata.key(), v)
    }
}

impl SlimServiceAccount {
    /// The namespace/name and the non-empty pull-secret names.
    pub(crate) fn pull_secrets(self) -> ((String, String), Vec<String>) {
        let names = self
            .image_pull_secrets
            .into_iter()
            .flatten()
            .map(|r| r.name)
            .filter(|n| !n.is_empty())
            .collect();
        (self.metadata.key(), names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::inventory::{self, Workload};
    use serde_json::{json, Value};

    /// A worker Deployment the way the airflow chart renders it: env, affinity, volumes,
    /// managedFields, probes, a last-applied annotation.
    fn heavy_workload(kind: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": kind,
            "metadata": {
                "name": "r-worker", "namespace": "ns", "resourceVersion": "42",
                "labels": {"release": "r", "component": "worker", "tier": "airflow"},
                "annotations": {
                    "astro-sha.astronomer.io/original-images": "{\"container:worker\":{}}",
                    "kubectl.kubernetes.io/last-applied-configuration": "x".repeat(4000)
                },
                "managedFields": [{"manager": "helm", "operation": "Update", "fieldsV1": {"f:spec": {}}}],
                "ownerReferences": []
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"release": "r", "component": "worker"}},
                "template": {
                    "metadata": {"labels": {"release": "r", "component": "worker"}},
                    "spec": {
                        "serviceAccountName": "r-worker",
                        "imagePullSecrets": [{"name": "r-registry"}, {"name": ""}],
                        "affinity": {"podAntiAffinity": {}},
                        "volumes": [{"name": "config", "configMap": {"name": "r-config"}}],
                        "initContainers": [{"name": "wait", "image": "quay.io/astronomer/astro-runtime:12.1.0",
                            "env": [{"name": "A", "value": "1"}]}],
                        "containers": [
                            {"name": "worker", "image": "quay.io/astronomer/astro-runtime:12.1.0",
                             "env": (0..40).map(|i| json!({"name": format!("E{i}"), "value": "v"})).collect::<Vec<_>>(),
                             "resources": {"limits": {"memory": "1Gi"}}},
                            {"name": "sidecar", "image": "quay.io/prometheus/statsd-exporter:v0.26.1"}
                        ]
                    }
                }
            },
            "status": {"replicas": 2}
        })
    }

    fn heavy_pod(id: &str) -> Value {
        json!({
            "metadata": {"name": "r-worker-0", "namespace": "ns",
                "labels": {"release": "r", "component": "worker"},
                "managedFields": [{"manager": "kubelet"}]},
            "spec": {"containers": [{"name": "worker", "image": "x", "env": [{"name": "A"}]}]},
            "status": {
                "phase": "Running",
                "initContainerStatuses": [{"name": "wait", "image": "x", "imageID": id, "ready": true, "restartCount": 0}],
                "containerStatuses": [{"name": "worker", "image": "x", "imageID": id, "ready": true, "restartCount": 0,
                    "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]
            }
        })
    }

    fn template_cm() -> Value {
        json!({
            "metadata": {"name": "r-config", "namespace": "ns", "labels": {"release": "r"}},
            "data": {"airflow.cfg": "x".repeat(10000),
                "pod_template_file.yaml": "kind: Pod\nspec:\n  containers:\n    - name: base\n      image: quay.io/astronomer/astro-runtime:12.1.0\n"}
        })
    }

    fn cronjob() -> Value {
        json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "r-cleanup", "namespace": "ns", "labels": {"release": "r", "component": "cleanup"}},
            "spec": {"schedule": "*/15 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "cleanup", "image": "quay.io/astronomer/astro-runtime:12.1.0", "args": ["x"]}]}}}}}
        })
    }

    /// The model built from slim objects is the model built from the full objects: every
    /// workload, container, selector, pull secret, records annotation and running digest.
    #[test]
    fn slim_objects_give_the_same_model_as_full_ones() {
        let id = format!("quay.io/astronomer/astro-runtime@sha256:{}", "a".repeat(64));
        let full: Vec<Workload> = vec![
            inventory::deployment(&serde_json::from_value(heavy_workload("Deployment")).unwrap()),
            inventory::statefulset(&serde_json::from_value(heavy_workload("StatefulSet")).unwrap()),
            inventory::cronjob(&serde_json::from_value(cronjob()).unwrap()),
            inventory::pod_template(&serde_json::from_value(template_cm()).unwrap()),
        ]
        .into_iter()
        .flatten()
        .collect();
        let slim_deployment = serde_json::from_value::<SlimWorkload>(heavy_workload("Deployment"))
            .unwrap()
            .into_deployment();
        let slim: Vec<Workload> = vec![
            inventory::deployment(&slim_deployment),
            inventory::statefulset(
                &serde_json::from_value::<SlimWorkload>(heavy_workload("StatefulSet"))
                    .unwrap()
                    .into_statefulset(),
            ),
            inventory::cronjob(
                &serde_json::from_value::<SlimCronJob>(cronjob())
                    .unwrap()
                    .into_dynamic(),
            ),
            serde_json::from_value::<SlimConfigMap>(template_cm())
                .unwrap()
                .into_pod_template()
                .as_ref()
                .and_then(inventory::pod_template),
        ]
        .into_iter()
        .flatten()
        .collect();
        assert_eq!(full.len(), 4);
        assert_eq!(slim.len(), 4);
        let full_pod = PodImages::from(
            &serde_json::from_value::<k8s_openapi::api::core::v1::Pod>(heavy_pod(&id)).unwrap(),
        );
        let slim_pod = serde_json::from_value::<SlimPod>(heavy_pod(&id))
            .unwrap()
            .into_pod_images();
        assert_eq!(full_pod, slim_pod);
        assert_eq!(slim_pod.image_ids.len(), 2);
        for (x, y) in full.iter().zip(&slim) {
            assert_eq!(x.containers, y.containers);
            assert_eq!(
                (&x.kind, &x.namespace, &x.name, &x.release, &x.component),
                (&y.kind, &y.namespace, &y.name, &y.release, &y.component)
            );
            assert_eq!(x.pod_selector, y.pod_selector);
            assert_eq!(
                (&x.pull_secrets, &x.service_account, &x.template_text),
                (&y.pull_secrets, &y.service_account, &y.template_text)
            );
            assert_eq!(x.resource_version, y.resource_version);
            assert_eq!(x.records_annotation(), y.records_annotation());
            assert_eq!(x.annotations.is_empty(), y.annotations.is_empty());
            for c in &x.containers {
                assert_eq!(
                    inventory::running(x, c, &[&full_pod]),
                    inventory::running(y, c, &[&slim_pod])
                );
            }
        }
        assert!(matches!(
            inventory::running(&slim[0], &slim[0].containers[1], &[&slim_pod]),
            inventory::Running::Digest(_)
        ));
        // The last-applied copy of the object is not kept.
        assert_eq!(
            slim_deployment.metadata.annotations.as_ref().unwrap()
                ["kubectl.kubernetes.io/last-applied-configuration"],
            ""
        );
        assert!(slim_deployment.metadata.managed_fields.is_none());
    }

    #[test]
    fn a_configmap_without_a_pod_template_is_skipped_and_secrets_keep_only_their_docker_config() {
        let cm: SlimConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "x", "namespace": "ns"}, "data": {"airflow.cfg": "y"}}))
        .unwrap();
        assert!(cm.into_pod_template().is_none());
        let s: SlimSecret = serde_json::from_value(json!({
            "metadata": {"name": "reg", "namespace": "ns"},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": "e30=", "other": "eA=="}}))
        .unwrap();
        assert_eq!(
            s.docker_config(),
            (("ns".into(), "reg".into()), Some(b"{}".to_vec()))
        );
        let sa: SlimServiceAccount = serde_json::from_value(json!({
            "metadata": {"name": "default", "namespace": "ns"},
            "imagePullSecrets": [{"name": "a"}, {"name": ""}], "secrets": [{"name": "t"}]}))
        .unwrap();
        assert_eq!(
            sa.pull_secrets(),
            (("ns".into(), "default".into()), vec!["a".to_string()])
        );
    }
}
