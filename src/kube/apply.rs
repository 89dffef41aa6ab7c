//! Writing image changes to the cluster, and taking them back.
//!
//! Every write is a JSON Patch whose `test` operations state what the plan saw: if anything changed
//! an image (or the pod template) between plan and apply, the API server refuses the patch and
//! nothing of that object is overwritten. The same edit, inverted, is the rollback.

use kube::api::{Api, ApiResource, DynamicObject, Patch};
use serde::Serialize;

use crate::core::inventory::Kind;
use crate::error::{Error, ErrorKind, Result};
use crate::kube::client::Cluster;

pub(crate) use crate::core::edit::ObjectEdit;

/// Why a write failed.
#[derive(Debug)]
pub(crate) enum ApplyError {
    /// A `test` failed: the object changed since the plan.
    Changed(String),
    /// The object is gone.
    Gone,
    /// Not sent: the run was interrupted (Ctrl-C, SIGTERM) before this object.
    Interrupted,
    Api(crate::error::Error),
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyError::Changed(m) => write!(f, "changed since the plan was made ({m})"),
            ApplyError::Gone => write!(f, "deleted since the plan was made"),
            ApplyError::Interrupted => write!(f, "not written: the run was interrupted"),
            ApplyError::Api(e) => write!(f, "{}", e.message),
        }
    }
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static AGAIN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static AGAIN_NOTIFY: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Whether Ctrl-C or SIGTERM arrived since [`watch_interrupts`].
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Resolves when a second Ctrl-C or SIGTERM arrives (never, if none does). The caller stops
/// what it is doing at once by dropping its work (see `write::apply_all`).
pub(crate) async fn interrupted_again() {
    loop {
        let notified = AGAIN_NOTIFY.notified();
        if AGAIN.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        notified.await;
    }
}

/// From here on, Ctrl-C (SIGINT) and SIGTERM no longer end the process: they are noted, the
/// object being written in each release in flight finishes, no further object is written, each
/// of those releases is rolled back (see [`apply_release`]) and no further release starts. A
/// second signal resolves [`interrupted_again`]: the caller stops at once (exit 130); every
/// object written so far carries its records. Called just before the first write, after any
/// confirmation: until then a signal ends the run with nothing written.
pub(crate) fn watch_interrupts() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            tracing::info!("cannot watch for Ctrl-C/SIGTERM; they will end the run at once");
            return;
        };
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                on_interrupt();
            }
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async {
        while tokio::signal::ctrl_c().await.is_ok() {
            on_interrupt();
        }
    });
}

fn on_interrupt() {
    if INTERRUPTED.swap(true, std::sync::atomic::Ordering::SeqCst) {
        AGAIN.store(true, std::sync::atomic::Ordering::SeqCst);
        AGAIN_NOTIFY.notify_waiters();
        return;
    }
    eprintln!("interrupted: finishing the write in flight of each release being written, then rolling those releases back; releases not started yet are left as they are (interrupt again to stop at once)");
}

/// Sends one edit. `cron` is the CronJob API resource the server offers.
pub(crate) async fn apply(
    cluster: &Cluster,
    edit: &ObjectEdit,
    server_dry_run: bool,
    cron: Option<&ApiResource>,
) -> Result<(), ApplyError> {
    let patch: json_patch::Patch = serde_json::from_value(edit.json_patch()).map_err(|e| {
        ApplyError::Api(crate::error::Error::new(format!(
            "internal: bad JSON patch: {e}"
        )))
    })?;
    let pp = crate::kube::client::patch_params(server_dry_run);
    let ns = edit.namespace.as_str();
    let client = cluster.client.clone();
    let res = match edit.kind {
        Kind::Deployment => Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client, ns)
            .patch(&edit.name, &pp, &Patch::Json::<()>(patch))
            .await
            .map(|_| ()),
        Kind::StatefulSet => Api::<k8s_openapi::api::apps::v1::StatefulSet>::namespaced(client, ns)
            .patch(&edit.name, &pp, &Patch::Json::<()>(patch))
            .await
            .map(|_| ()),
        Kind::ConfigMap => Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client, ns)
            .patch(&edit.name, &pp, &Patch::Json::<()>(patch))
            .await
            .map(|_| ()),
        Kind::CronJob => {
            let Some(ar) = cron else {
                return Err(ApplyError::Api(crate::error::Error::new(
                    "this API server serves no CronJob API",
                )));
            };
            Api::<DynamicObject>::namespaced_with(client, ns, ar)
                .patch(&edit.name, &pp, &Patch::Json::<()>(patch))
                .await
                .map(|_| ())
        }
    };
    res.map_err(|e| match &e {
        kube::Error::Api(s) if s.code == 404 => ApplyError::Gone,
        kube::Error::Api(s) if is_precondition_failure(s.code, &s.message) => {
            ApplyError::Changed(s.message.clone())
        }
        _ => ApplyError::Api(cluster.err(e, "patch", edit.kind.resource(), Some(ns))),
    })
}

/// Whether a refused patch means "the object changed since the plan" (a `test` op failed, or a
/// concurrent writer won), as opposed to a write refused for another reason (invalid object,
/// too large, forbidden), which must be reported as what it is.
fn is_precondition_failure(code: u16, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    // 1.20 answers a failed `test` op with a bare 422 and this generic message (the op is only
    // named in the details); newer servers put the json-patch error text in the message.
    let test_failed = m.contains("testing value") || m.contains("test operation");
    match code {
        422 => test_failed || m == "the server rejected our request due to an error in our request",
        409 => true,
        500 => test_failed,
        _ => false,
    }
}

/// What happened to one object of a release.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Outcome {
    pub(crate) object: String,
    pub(crate) namespace: String,
    pub(crate) result: ObjectResult,
}

impl Outcome {
    fn of(edit: &ObjectEdit, result: ObjectResult) -> Outcome {
        Outcome {
            object: edit.display_name(),
            namespace: edit.namespace.clone(),
            result,
        }
    }
}

/// An object's fate. In reports it is one string (the JSON `result` field, which scripts read):
/// the run's word (`pinned`, `unpinned (server dry run)`), `failed: <why>`, `not attempted`,
/// `rolled back`, `ROLLBACK FAILED: <why>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ObjectResult {
    /// Written; the run's word for it.
    Done(String),
    /// The write that failed the release, and why.
    Failed(String),
    /// Left as it was: an earlier object of its release failed, or the run was interrupted.
    NotAttempted,
    /// Written, then undone after a later object of its release failed.
    RolledBack,
    /// Written, and undoing it failed (why): it keeps the change and its record.
    RollbackFailed(String),
}

impl std::fmt::Display for ObjectResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectResult::Done(word) => write!(f, "{word}"),
            ObjectResult::Failed(why) => write!(f, "failed: {why}"),
            ObjectResult::NotAttempted => write!(f, "not attempted"),
            ObjectResult::RolledBack => write!(f, "rolled back"),
            ObjectResult::RollbackFailed(why) => write!(f, "ROLLBACK FAILED: {why}"),
        }
    }
}

impl Serialize for ObjectResult {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A release's edits, applied: each object's outcome, and the failure that stopped the release.
#[derive(Debug)]
pub(crate) struct ReleaseApplied {
    pub(crate) outcomes: Vec<Outcome>,
    pub(crate) failure: Option<ReleaseFailure>,
}

/// Why a release was not written: the object whose write failed, the error, and what became
/// of the release's other objects (see [`after_failure`]).
#[derive(Debug)]
pub(crate) struct ReleaseFailure {
    pub(crate) object: String,
    pub(crate) error: ApplyError,
    pub(crate) after: String,
}

/// Applies a release's edits all-or-nothing, in order: on the first failure, the edits already
/// made are undone in reverse order.
pub(crate) async fn apply_release(
    cluster: &Cluster,
    edits: &[ObjectEdit],
    server_dry_run: bool,
    cron: Option<&ApiResource>,
    done_word: &str,
) -> ReleaseApplied {
    let mut outcomes: Vec<Outcome> = vec![];
    for (i, edit) in edits.iter().enumerate() {
        // Checked between objects: the write in flight finishes (a patch is atomic, with its
        // records), nothing new starts, and what this release wrote is rolled back below.
        let result = if interrupted() {
            Err(ApplyError::Interrupted)
        } else {
            apply(cluster, edit, server_dry_run, cron).await
        };
        match result {
            Ok(()) => outcomes.push(Outcome::of(edit, ObjectResult::Done(done_word.into()))),
            Err(error) => {
                let failure = undo_release(
                    cluster,
                    edits,
                    i,
                    error,
                    &mut outcomes,
                    server_dry_run,
                    cron,
                )
                .await;
                return ReleaseApplied {
                    outcomes,
                    failure: Some(failure),
                };
            }
        }
    }
    ReleaseApplied {
        outcomes,
        failure: None,
    }
}

/// After edit `i` of a release failed with `error` (edits before it applied, their outcomes
/// in `outcomes`): records the failed and untouched objects, rolls the applied ones back
/// newest first (not in a server dry run: nothing was stored), and says what became of each.
async fn undo_release(
    cluster: &Cluster,
    edits: &[ObjectEdit],
    i: usize,
    error: ApplyError,
    outcomes: &mut Vec<Outcome>,
    server_dry_run: bool,
    cron: Option<&ApiResource>,
) -> ReleaseFailure {
    // An interrupted edit was never sent: it is left as it was, like the later ones.
    let first_untouched = match error {
        ApplyError::Interrupted => i,
        _ => {
            outcomes.push(Outcome::of(
                &edits[i],
                ObjectResult::Failed(error.to_string()),
            ));
            i + 1
        }
    };
    for rest in &edits[first_untouched..] {
        outcomes.push(Outcome::of(rest, ObjectResult::NotAttempted));
    }
    let mut rolled_back = vec![];
    let mut not_rolled_back = vec![];
    if !server_dry_run {
        for (j, done) in edits[..i].iter().enumerate().rev() {
            match apply(cluster, &done.inverse(), false, cron).await {
                Ok(()) => {
                    outcomes[j].result = ObjectResult::RolledBack;
                    rolled_back.push(done.display_name());
                }
                Err(e) => {
                    outcomes[j].result = ObjectResult::RollbackFailed(e.to_string());
                    not_rolled_back.push((done.display_name(), e.to_string()));
                }
            }
        }
    }
    let untouched: Vec<String> = edits[first_untouched..]
        .iter()
        .map(|e| e.display_name())
        .collect();
    let after = if server_dry_run {
        "nothing was written (server dry run)".to_string()
    } else {
        after_failure(&rolled_back, &not_rolled_back, &untouched)
    };
    ReleaseFailure {
        object: edits[i].display_name(),
        error,
        after,
    }
}

/// What a failed release's other objects were left as, object by object: the earlier writes
/// rolled back, those whose rollback failed (and why: they keep the change and its record), the
/// later objects left as they were.
pub(crate) fn after_failure(
    rolled_back: &[String],
    not_rolled_back: &[(String, String)],
    untouched: &[String],
) -> String {
    let mut parts = vec![];
    if !rolled_back.is_empty() {
        parts.push(format!("rolled back: {}", rolled_back.join(", ")));
    }
    for (object, why) in not_rolled_back {
        parts.push(format!(
            "rollback failed: {object} ({why}); it keeps the change and its record"
        ));
    }
    if !untouched.is_empty() {
        parts.push(format!("left as it was: {}", untouched.join(", ")));
    }
    if rolled_back.is_empty() && not_rolled_back.is_empty() {
        parts.insert(0, "no earlier write to undo".into());
    }
    parts.join("; ")
}

/// Checks with SelfSubjectAccessReview that every object kind can be patched in every namespace
/// of the plan, before any write; the first denial (in namespace, then kind order) stops the run
/// with nothing written. A kind patched in several namespaces is first asked for every namespace
/// at once (a review without a namespace means all of them for a namespaced resource:
/// <https://kubernetes.io/docs/reference/kubernetes-api/authorization-resources/self-subject-access-review-v1/>);
/// where that is allowed (a ClusterRole bound cluster-wide), its namespaces need no review of
/// their own. The reviews run `parallel` at a time.
pub(crate) async fn access_check(
    cluster: &Cluster,
    edits: &[ObjectEdit],
    parallel: usize,
) -> Result<()> {
    use futures::StreamExt;
    let mut wanted: Vec<(String, Kind)> = edits
        .iter()
        .map(|e| (e.namespace.clone(), e.kind))
        .collect();
    wanted.sort();
    wanted.dedup();
    let mut kinds: Vec<Kind> = wanted.iter().map(|(_, k)| *k).collect();
    kinds.sort();
    let several: Vec<Kind> = kinds
        .chunk_by(|a, b| a == b)
        .filter(|c| c.len() > 1)
        .map(|c| c[0])
        .collect();
    let everywhere: Vec<bool> = futures::stream::iter(several.iter())
        .map(|kind| may_patch(cluster, None, *kind))
        .buffered(parallel.max(1))
        .collect()
        .await;
    let cluster_wide: Vec<Kind> = several
        .into_iter()
        .zip(everywhere)
        .filter_map(|(kind, ok)| ok.then_some(kind))
        .collect();
    wanted.retain(|(_, kind)| !cluster_wide.contains(kind));
    let allowed: Vec<bool> = futures::stream::iter(wanted.iter())
        .map(|(ns, kind)| may_patch(cluster, Some(ns), *kind))
        .buffered(parallel.max(1))
        .collect()
        .await;
    match wanted.iter().zip(allowed).find(|(_, ok)| !ok) {
        Some(((ns, kind), _)) => Err(Error::new(format!("forbidden: cannot patch {} in namespace {ns:?}; nothing was changed", kind.resource()))
            .hint(format!("ask for a Role granting `patch` on `{}` in {ns}; the README lists the Role `pin` needs", kind.resource()))
            .kind(ErrorKind::Forbidden)),
        None => Ok(()),
    }
}

/// One SelfSubjectAccessReview: may the caller patch `kind` in `ns` (`None`: in every
/// namespace)? A server that refuses the review itself is not a "no" (true): the writes will
/// tell. The one access review of the crate (`kube::restart` asks it too).
pub(crate) async fn may_patch(cluster: &Cluster, ns: Option<&str>, kind: Kind) -> bool {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    use kube::api::PostParams;
    let (resource, group) = kind
        .resource()
        .split_once('.')
        .unwrap_or((kind.resource(), ""));
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: ns.map(str::to_string),
                verb: Some("patch".into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(cluster.client.clone());
    match api.create(&PostParams::default(), &review).await {
        Ok(r) => r.status.as_ref().is_none_or(|s| s.allowed),
        Err(e) => {
            tracing::info!(error = %e, "access review unavailable; skipping the pre-check");
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::edit::{ImageEdit, ObjectEdit};
    use crate::core::inventory::{Kind, Role};
    use serde_json::json;

    fn edit() -> ObjectEdit {
        ObjectEdit {
            kind: Kind::StatefulSet,
            namespace: "ns".into(),
            name: "r-scheduler".into(),
            release: "r".into(),
            images: vec![ImageEdit {
                container: "wait".into(),
                role: Role::Init,
                index: 0,
                from: "a:1".into(),
                to: "a:1@sha256:x".into(),
            }],
            template: None,
            annotation: (None, Some("{}".into())),
            had_annotations: false,
            legacy_record: false,
        }
    }

    #[test]
    fn patch_tests_name_and_image_then_replaces() {
        let p = edit().json_patch();
        let ops = p.as_array().unwrap();
        assert_eq!(
            ops[0],
            json!({"op":"test","path":"/spec/template/spec/initContainers/0/name","value":"wait"})
        );
        assert_eq!(
            ops[1],
            json!({"op":"test","path":"/spec/template/spec/initContainers/0/image","value":"a:1"})
        );
        assert_eq!(
            ops[2],
            json!({"op":"replace","path":"/spec/template/spec/initContainers/0/image","value":"a:1@sha256:x"})
        );
        assert_eq!(ops[3]["path"], "/metadata/annotations");
        serde_json::from_value::<json_patch::Patch>(p).unwrap();
    }

    #[test]
    fn only_failed_preconditions_count_as_changed() {
        // What kube-apiserver 1.20 answers to a failed `test` op.
        assert!(is_precondition_failure(
            422,
            "the server rejected our request due to an error in our request"
        ));
        assert!(is_precondition_failure(
            422,
            "testing value /spec/template/spec/containers/0/image failed: test failed"
        ));
        assert!(is_precondition_failure(
            409,
            "Operation cannot be fulfilled on deployments.apps \"x\": the object has been modified; please apply your changes to the latest version and try again"
        ));
        // A validation error is not a concurrent change, even though it is a 422.
        assert!(!is_precondition_failure(
            422,
            "Deployment.apps \"x\" is invalid: spec.template.spec.containers[0].image: Invalid value"
        ));
        assert!(!is_precondition_failure(
            413,
            "Request entity too large: limit is 3145728"
        ));
        // "latest" contains "test": a 500 that mentions it is still a server error.
        assert!(!is_precondition_failure(
            500,
            "please use the latest client"
        ));
        assert!(!is_precondition_failure(403, "forbidden"));
    }

    #[test]
    fn after_failure_says_what_happened_to_each_object() {
        assert_eq!(
            after_failure(&["deployment/a".into()], &[], &["configmap/c".into()]),
            "rolled back: deployment/a; left as it was: configmap/c"
        );
        assert_eq!(
            after_failure(
                &[],
                &[("deployment/a".into(), "cannot reach the API server".into())],
                &[]
            ),
            "rollback failed: deployment/a (cannot reach the API server); it keeps the change and its record"
        );
        assert_eq!(after_failure(&[], &[], &[]), "no earlier write to undo");
    }

    #[test]
    fn inverse_swaps_everything() {
        let inv = edit().inverse();
        assert_eq!(inv.images[0].from, "a:1@sha256:x");
        assert_eq!(inv.images[0].to, "a:1");
        assert_eq!(inv.annotation, (Some("{}".into()), None));
        let ops = inv.json_patch();
        assert_eq!(
            ops.as_array().unwrap().last().unwrap(),
            &json!({"op":"remove","path":"/metadata/annotations/astro-sha.github.io~1original-images"})
        );
    }

    #[test]
    fn cronjob_and_template_paths() {
        let mut e = edit();
        e.kind = Kind::CronJob;
        assert!(e.json_patch()[0]["path"]
            .as_str()
            .unwrap()
            .starts_with("/spec/jobTemplate/spec/template/spec/"));
        e.kind = Kind::ConfigMap;
        e.template = Some(("old".into(), "new".into()));
        let p = e.json_patch();
        assert_eq!(
            p[0],
            json!({"op":"test","path":"/data/pod_template_file.yaml","value":"old"})
        );
        assert_eq!(
            p[1],
            json!({"op":"replace","path":"/data/pod_template_file.yaml","value":"new"})
        );
    }
}
