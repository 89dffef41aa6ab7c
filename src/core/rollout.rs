//! Which workloads read a ConfigMap through their pod template, the restart that makes them read
//! it again, and which running pods still hold an older copy. Pure: objects in, decisions out.
//!
//! Why a restart at all: Astronomer's platform chart mounts the releases ConfigMap (and
//! `<release>-houston-config`) into Houston, its worker, its CronJobs and hooks with `subPath`
//! (chart `templates/_helpers.yaml`, `houston_volume_mounts`), and the kubelet never refreshes a
//! `subPath` mount when the ConfigMap changes (kubernetes/kubernetes#50345). Only a new pod reads
//! the new content.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodSpec};
use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;
use serde::Serialize;

/// The pod-template annotation `kubectl rollout restart` sets; a new value rolls the pods.
pub(crate) const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// Whether a pod spec has a volume for ConfigMap `name` (plain or projected).
pub(crate) fn pod_spec_mounts(spec: &PodSpec, name: &str) -> bool {
    spec.volumes.iter().flatten().any(|v| {
        v.config_map.as_ref().is_some_and(|c| c.name == name)
            || v.projected.as_ref().is_some_and(|p| {
                p.sources
                    .iter()
                    .flatten()
                    .any(|s| s.config_map.as_ref().is_some_and(|c| c.name == name))
            })
    })
}

/// The same for a pod spec held as JSON (a CronJob read as a dynamic object: `batch/v1` or
/// `batch/v1beta1`, whichever the server serves).
fn json_pod_spec_mounts(spec: &serde_json::Value, name: &str) -> bool {
    serde_json::from_value::<PodSpec>(spec.clone()).is_ok_and(|s| pod_spec_mounts(&s, name))
}

/// The workloads of one namespace whose pod template mounts a ConfigMap.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Mounting {
    pub(crate) deployments: Vec<String>,
    pub(crate) statefulsets: Vec<String>,
    /// CronJobs start a new pod per run: they pick the new content up on their next run.
    pub(crate) cronjobs: Vec<String>,
}

impl Mounting {
    /// Picks, among the listed workloads, those whose pod template mounts `configmap`; sorted.
    pub(crate) fn find(
        deployments: &[Deployment],
        statefulsets: &[StatefulSet],
        cronjobs: &[DynamicObject],
        configmap: &str,
    ) -> Mounting {
        let name = |m: &kube::api::ObjectMeta| m.name.clone().unwrap_or_default();
        let mut out = Mounting {
            deployments: deployments
                .iter()
                .filter(|d| {
                    d.spec
                        .template
                        .spec
                        .as_ref()
                        .is_some_and(|s| pod_spec_mounts(s, configmap))
                })
                .map(|d| name(&d.metadata))
                .collect(),
            statefulsets: statefulsets
                .iter()
                .filter(|d| {
                    d.spec
                        .template
                        .spec
                        .as_ref()
                        .is_some_and(|s| pod_spec_mounts(s, configmap))
                })
                .map(|d| name(&d.metadata))
                .collect(),
            cronjobs: cronjobs
                .iter()
                .filter(|c| {
                    c.data
                        .pointer("/spec/jobTemplate/spec/template/spec")
                        .is_some_and(|s| json_pod_spec_mounts(s, configmap))
                })
                .map(|c| name(&c.metadata))
                .collect(),
        };
        out.deployments.sort();
        out.statefulsets.sort();
        out.cronjobs.sort();
        out
    }

    /// `deployment/x`, `statefulset/y`: what a restart rolls.
    pub(crate) fn workloads(&self) -> Vec<String> {
        self.deployments
            .iter()
            .map(|n| format!("deployment/{n}"))
            .chain(self.statefulsets.iter().map(|n| format!("statefulset/{n}")))
            .collect()
    }

    /// `cronjob/z`.
    pub(crate) fn cronjob_names(&self) -> Vec<String> {
        self.cronjobs
            .iter()
            .map(|n| format!("cronjob/{n}"))
            .collect()
    }

    /// The exact command that restarts them, or `None` when nothing needs it.
    pub(crate) fn command(&self, namespace: &str) -> Option<String> {
        let w = self.workloads();
        (!w.is_empty()).then(|| format!("kubectl -n {namespace} rollout restart {}", w.join(" ")))
    }
}

/// The patch `kubectl rollout restart` sends: a new `restartedAt` on the pod template.
pub(crate) fn restart_patch(now: &str) -> serde_json::Value {
    serde_json::json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}})
}

/// When the content of a ConfigMap last changed, as far as can be told: the annotation `import`
/// writes when it changes the catalog, else the newest managedFields time (any writer, any field:
/// an upper bound that can only over-report staleness, never hide it).
pub(crate) fn last_change(cm: &ConfigMap, annotation: &str) -> Option<(Timestamp, &'static str)> {
    if let Some(t) = cm
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotation))
        .and_then(|v| v.parse::<Timestamp>().ok())
    {
        return Some((t, "annotation"));
    }
    cm.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|f| f.time.as_ref().map(|t| t.0))
        .max()
        .map(|t| (t, "managedFields"))
}

/// A running pod that still reads an older copy of a ConfigMap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StalePod {
    pub(crate) pod: String,
    pub(crate) started: String,
}

/// Pods that mount `configmap` and started before `changed`: their `subPath` copy is older.
/// A pod's start is `status.startTime`, else its creation time; a pod with neither is skipped.
pub(crate) fn stale_pods(pods: &[Pod], configmap: &str, changed: Timestamp) -> Vec<StalePod> {
    let mut out: Vec<StalePod> = pods
        .iter()
        .filter(|p| {
            p.spec
                .as_ref()
                .is_some_and(|s| pod_spec_mounts(s, configmap))
                && !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                )
        })
        .filter_map(|p| {
            let started = p
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .or(p.metadata.creation_timestamp.as_ref())?
                .0;
            (started < changed).then(|| StalePod {
                pod: p.metadata.name.clone().unwrap_or_default(),
                started: started.to_string(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.pod.cmp(&b.pod));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(volumes: serde_json::Value) -> serde_json::Value {
        json!({"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}], "volumes": volumes}})
    }

    fn deployment(name: &str, volumes: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({"metadata": {"name": name},
            "spec": {"selector": {}, "template": template(volumes)}}))
        .unwrap()
    }

    fn cm_volume(cm: &str) -> serde_json::Value {
        json!([{"name": "v", "configMap": {"name": cm}}])
    }

    #[test]
    fn finds_what_mounts_the_configmap() {
        let deployments = vec![
            deployment("houston", cm_volume("releases")),
            deployment("commander", cm_volume("other")),
            deployment(
                "projected",
                json!([{"name": "p", "projected": {"sources": [{"configMap": {"name": "releases"}}]}}]),
            ),
            deployment("no-volumes", json!(null)),
        ];
        let sts: Vec<StatefulSet> = vec![serde_json::from_value(json!({"metadata": {"name": "worker"},
            "spec": {"selector": {}, "serviceName": "w", "template": template(cm_volume("releases"))}}))
        .unwrap()];
        let cron: Vec<DynamicObject> = vec![
            serde_json::from_value(json!({"apiVersion": "batch/v1beta1", "kind": "CronJob",
                "metadata": {"name": "update-check"},
                "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template(cm_volume("releases"))}}}}))
            .unwrap(),
            serde_json::from_value(json!({"apiVersion": "batch/v1", "kind": "CronJob",
                "metadata": {"name": "cleanup"},
                "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template(cm_volume("x"))}}}}))
            .unwrap(),
        ];
        let m = Mounting::find(&deployments, &sts, &cron, "releases");
        assert_eq!(m.deployments, vec!["houston", "projected"]);
        assert_eq!(m.statefulsets, vec!["worker"]);
        assert_eq!(m.cronjobs, vec!["update-check"]);
        assert_eq!(
            m.command("astronomer").as_deref(),
            Some("kubectl -n astronomer rollout restart deployment/houston deployment/projected statefulset/worker")
        );
        assert_eq!(Mounting::default().command("x"), None);
    }

    #[test]
    fn the_patch_is_kubectl_rollout_restart() {
        assert_eq!(
            restart_patch("2026-12-01T00:00:00Z"),
            json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-12-01T00:00:00Z"}}}}})
        );
    }

    #[test]
    fn last_change_prefers_the_annotation_then_managed_fields() {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c",
            "annotations": {"x/changed-at": "2026-12-01T01:00:00Z"},
            "managedFields": [{"manager": "a", "time": "2026-12-01T02:00:00Z"}, {"manager": "b", "time": "2026-12-01T03:00:00Z"}]}}))
        .unwrap();
        let (t, how) = last_change(&cm, "x/changed-at").unwrap();
        assert_eq!(
            (t.to_string().as_str(), how),
            ("2026-12-01T01:00:00Z", "annotation")
        );
        let (t, how) = last_change(&cm, "y/none").unwrap();
        assert_eq!(
            (t.to_string().as_str(), how),
            ("2026-12-01T03:00:00Z", "managedFields")
        );
        assert!(last_change(&ConfigMap::default(), "x").is_none());
    }

    #[test]
    fn stale_pods_started_before_the_change() {
        let pod = |name: &str, cm: &str, start: Option<&str>, phase: &str| -> Pod {
            serde_json::from_value(
                json!({"metadata": {"name": name, "creationTimestamp": "2026-12-01T00:00:00Z"},
                "spec": {"containers": [{"name": "c", "image": "i"}], "volumes": cm_volume(cm)},
                "status": {"phase": phase, "startTime": start}}),
            )
            .unwrap()
        };
        let pods = vec![
            pod("old", "releases", Some("2026-12-01T00:30:00Z"), "Running"),
            pod("new", "releases", Some("2026-12-01T02:00:00Z"), "Running"),
            pod("other-cm", "x", Some("2026-12-01T00:30:00Z"), "Running"),
            pod(
                "done",
                "releases",
                Some("2026-12-01T00:30:00Z"),
                "Succeeded",
            ),
            pod("no-start", "releases", None, "Pending"),
        ];
        let changed: Timestamp = "2026-12-01T01:00:00Z".parse().unwrap();
        let s = stale_pods(&pods, "releases", changed);
        let names: Vec<&str> = s.iter().map(|p| p.pod.as_str()).collect();
        assert_eq!(
            names,
            vec!["no-start", "old"],
            "creation time stands in for a missing start"
        );
        assert_eq!(s[1].started, "2026-12-01T00:30:00Z");
    }
}
