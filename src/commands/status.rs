//! `kubectl astro-sha status`: one screen that answers "are we pinned?". This command gathers
//! the facts (the platform through the one Houston discovery, its Helm release Secrets and
//! ConfigMaps through `kube/`, the Airflow Deployments through the read pipeline), hands them to
//! the pure report (`core::status_report`), and prints it (`output::status`) with its exit status.
//!
//! RBAC is expected to hide things (Secrets especially): each read that is refused becomes a
//! "could not read" line and the rest is still reported.

use clap::Args;
use k8s_openapi::api::core::v1::Pod;

use crate::args::{ContextsArgs, GlobalArgs, PlatformArgs, RegistryArgs, RuntimeArgs};
use crate::commands::operations::{load, releases};
use crate::core::catalog_index::CatalogIndex;
use crate::core::helm;
use crate::core::inventory::RuntimeMatcher;
use crate::core::rollout::Mounting;
use crate::core::status_report::{
    exit_code, releases_configmap_name, report, unjudged_tagless, Facts, Got,
};
use crate::core::{show_report, state};
use crate::error::ExitStatus;
use crate::error::{Error, ErrorKind, Result};
use crate::kube::client::{Cluster, Namespaces, Scope};
use crate::kube::platform::{self, Platform, LOCAL_PRODUCTION_KEY};
use crate::kube::restart;
use crate::output::{self, status::render};
use crate::registry::Resolver;

#[derive(Args, Debug, Clone)]
#[command(
    after_help = "Examples:\n  kubectl astro-sha status\n  kubectl astro-sha status --platform-namespace astronomer -o yaml\n  kubectl astro-sha status --check && echo 'all in order'\n\n  # Airflow in one namespace\n  kubectl astro-sha status -n astronomer-quasaric-sun-1234\n\n  # Several platforms, one exit code\n  kubectl astro-sha status --contexts 'prod-*,staging' --check\n\nAirflow Deployments are counted in every namespace unless -n is given. Exit codes: 0 the report is complete\n(with --check: and everything is in order), 1 a read was refused (with --check: or something is not\nin order, or not known to be), 2 error. Across contexts (--contexts, --all-contexts), the worst of every context's: 2 when one could not be reached, authenticated or read at all (forbidden), else 1 with --check when one is not in order or has no platform, else 0."
)]
pub(crate) struct StatusArgs {
    /// Exit 1 unless the feature is on, the releases ConfigMap is complete and mounted, and every
    /// Airflow Deployment is pinned and running its pin; 2 on error
    #[arg(long)]
    pub(crate) check: bool,
    #[command(flatten)]
    pub(crate) platform: PlatformArgs,
    /// Name of the Runtime releases ConfigMap [default: the Helm values' runtimeReleasesConfigMapName, else astro-runtime-base-images]
    #[arg(long, value_name = "NAME")]
    pub(crate) releases_configmap: Option<String>,
    /// Where each catalog entry keeps its digest (dotted, relative to the entry), as for import
    #[arg(long, value_name = "PATH", default_value = "sha256")]
    pub(crate) digest_field: String,
    #[command(flatten)]
    pub(crate) runtime: RuntimeArgs,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
    #[command(flatten)]
    pub(crate) contexts: ContextsArgs,
}

/// A read's outcome as the report takes it: a refused read (`Forbidden`, or another API status)
/// becomes a "could not read" line naming `resource` in `ns`; a missing object is `Missing`;
/// anything else (unreachable, 401, timeout) is an error for the whole run.
fn classify<T>(res: Result<Option<T>>, resource: &str, what: &str, ns: &str) -> Result<Got<T>> {
    match res {
        Ok(Some(t)) => Ok(Got::Found(t)),
        Ok(None) => Ok(Got::Missing(format!("{what} not found in namespace {ns}"))),
        Err(e) => match e.kind {
            ErrorKind::Forbidden => Ok(Got::Unreadable(format!(
                "{resource} in namespace {ns} (forbidden)"
            ))),
            ErrorKind::NotFound => Ok(Got::Missing(format!("{what} not found in namespace {ns}"))),
            ErrorKind::ApiStatus | ErrorKind::Conflict => Ok(Got::Unreadable(format!(
                "{resource} in namespace {ns} ({})",
                e.message.lines().next().unwrap_or_default()
            ))),
            _ => Err(e),
        },
    }
}

/// A refused read as a "could not read" line: what the API server refused, from the error's
/// `object` (`deployments.apps in namespace x (forbidden)`); any other error is kept whole after
/// `what`. The kind decides, never the message's wording.
fn unreadable_from(e: &Error, what: &str) -> String {
    match (&e.object, e.kind) {
        (Some(object), ErrorKind::Forbidden) => format!("{object} (forbidden)"),
        _ => format!("{what}: {}", e.message.lines().next().unwrap_or_default()),
    }
}

pub(crate) async fn run(g: &GlobalArgs, a: &StatusArgs) -> Result<ExitStatus> {
    if let Some(contexts) = a.contexts.selected(g)? {
        return across::run(g, a, &contexts).await;
    }
    let cluster = Cluster::connect(&g.connect()).await?;
    let resolver = a.registry.resolver(false)?;
    let facts = gather(&cluster, g, a, &resolver).await?;
    let rep = report(&facts);
    match output::structured(&rep, g.output)? {
        Some(s) => output::print(&s)?,
        None => output::print(&render(
            &rep,
            g.output == crate::args::OutputFormat::Wide,
            g.no_headers,
            output::color_enabled(),
        ))?,
    }
    let exit = exit_code(&rep, a.check);
    if let Some(why) = exit.why {
        eprintln!("{why}");
    }
    Ok(exit.status)
}

/// Everything `status` reads from one context; registry answers come from `resolver` (one per
/// run, shared by every context of a run across contexts).
async fn gather(
    cluster: &Cluster,
    g: &GlobalArgs,
    a: &StatusArgs,
    resolver: &Resolver,
) -> Result<Facts> {
    let explicit = a.platform.platform_namespace.as_deref();
    let platform = gather_platform(cluster, explicit).await?;
    let p = platform.found().cloned();
    let ns = p
        .as_ref()
        .map(|p| p.namespace.clone())
        .or_else(|| explicit.map(str::to_string));

    let (helm, local_production) = gather_platform_config(cluster, p.as_ref()).await?;

    // The releases ConfigMap.
    let releases_configmap_name =
        releases_configmap_name(a.releases_configmap.as_deref(), helm.found());
    let releases_configmap = match &ns {
        Some(ns) => classify(
            cluster.get_configmap(ns, &releases_configmap_name).await,
            "configmaps",
            &format!("ConfigMap {releases_configmap_name}"),
            ns,
        )?,
        None => Got::NotChecked("platform namespace unknown".into()),
    };

    let (platform_pods, mounting) = match &ns {
        Some(ns) => gather_readers(cluster, ns, &releases_configmap_name).await,
        None => (
            Got::NotChecked("platform namespace unknown".into()),
            Got::NotChecked("platform namespace unknown".into()),
        ),
    };
    let catalog = match &releases_configmap {
        Got::Found(cm) => CatalogIndex::from_configmap(cm, Some(&a.digest_field)).ok(),
        _ => None,
    };
    let (airflow_scope, airflow) =
        gather_airflow(cluster, g, a, resolver, catalog.as_ref()).await?;
    if let Some(u) = unjudged_tagless(
        &airflow,
        catalog.is_some(),
        &releases_configmap,
        &releases_configmap_name,
    ) {
        eprintln!("{}", output::safe(&releases::note(u.containers, &u.why)));
    }
    Ok(Facts {
        platform_pods,
        mounting,
        platform,
        helm,
        local_production,
        releases_configmap_name,
        releases_configmap,
        airflow_scope,
        airflow,
        digest_field: a.digest_field.clone(),
        platform_namespace: explicit.map(str::to_string),
    })
}

/// Who reads the releases ConfigMap: the platform namespace's pods, and the workloads whose pod
/// template mounts it (for the restart command). A refused read is reported, not fatal.
async fn gather_readers(
    cluster: &Cluster,
    ns: &str,
    configmap: &str,
) -> (Got<Vec<Pod>>, Got<Mounting>) {
    let scope = Scope::Namespace(ns.to_string());
    let pods = match cluster.list::<Pod>(&scope, "", "pods").await {
        Ok(p) => Got::Found(p),
        Err(e) => Got::Unreadable(unreadable_from(&e, &format!("pods in namespace {ns}"))),
    };
    let mounting = match restart::mounting(cluster, ns, configmap).await {
        Ok(m) => Got::Found(m),
        Err(e) => Got::Unreadable(unreadable_from(
            &e,
            &format!("deployments and statefulsets in namespace {ns}"),
        )),
    };
    (pods, mounting)
}

/// Houston's Deployment, in `--platform-namespace` or in every namespace (the one discovery):
/// none found is `Missing`, a refused list `Unreadable`; anything else fails the run.
async fn gather_platform(cluster: &Cluster, explicit: Option<&str>) -> Result<Got<Platform>> {
    let where_ = explicit
        .map(|ns| format!("in namespace {ns}"))
        .unwrap_or_else(|| "in all namespaces".into());
    Ok(match platform::find(cluster, explicit).await {
        Ok(p) => Got::Found(p),
        Err(e) if e.kind == ErrorKind::Forbidden => Got::Unreadable(format!(
            "deployments.apps {where_} (forbidden), so the platform's Houston is unknown{}",
            if explicit.is_none() {
                "; pass --platform-namespace"
            } else {
                ""
            }
        )),
        Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::Failed) => {
            Got::Missing(e.message)
        }
        Err(e) => return Err(e),
    })
}

/// The platform's Helm release and the local-production.yaml Houston reads.
async fn gather_platform_config(
    cluster: &Cluster,
    p: Option<&Platform>,
) -> Result<(Got<helm::Release>, Got<String>)> {
    let Some(p) = p else {
        return Ok((
            Got::NotChecked("platform unknown".into()),
            Got::NotChecked("platform unknown".into()),
        ));
    };
    Ok((
        gather_helm(cluster, p).await?,
        gather_local_production(cluster, p).await?,
    ))
}

/// The platform's deployed Helm release, from its release Secrets.
async fn gather_helm(cluster: &Cluster, p: &Platform) -> Result<Got<helm::Release>> {
    let list = match platform::release_secrets(cluster, &p.namespace, &p.release).await {
        Ok(list) => list,
        // The chart version then comes from Houston's label: say what is missing.
        Err(e) if e.kind == ErrorKind::Forbidden => {
            return Ok(Got::Unreadable(format!(
                "secrets in namespace {} (forbidden), so the Helm release values and chart version",
                p.namespace
            )))
        }
        Err(e) => return classify(Err(e), "secrets", "Helm release Secrets", &p.namespace),
    };
    Ok(match helm::latest(&list, &p.release) {
        None => Got::Missing(format!(
            "no deployed Helm release {} in namespace {}",
            p.release, p.namespace
        )),
        Some(_) => match helm::release_from(&list, &p.release, &p.namespace) {
            Ok(r) => Got::Found(r),
            Err(e) => Got::Broken(e.message),
        },
    })
}

/// `local-production.yaml` of `<release>-houston-config`: what Houston reads.
async fn gather_local_production(cluster: &Cluster, p: &Platform) -> Result<Got<String>> {
    let name = p.config_map();
    let cm = classify(
        cluster.get_configmap(&p.namespace, &name).await,
        "configmaps",
        &format!("ConfigMap {name}"),
        &p.namespace,
    )?;
    Ok(cm.then(
        |cm| match cm.data.as_ref().and_then(|d| d.get(LOCAL_PRODUCTION_KEY)) {
            Some(t) => Got::Found(t.clone()),
            None => Got::Missing(format!("ConfigMap {name} has no {LOCAL_PRODUCTION_KEY}")),
        },
    ))
}

/// The Airflow Deployments (every namespace unless -n), as `show` sees them; and that scope.
async fn gather_airflow(
    cluster: &Cluster,
    g: &GlobalArgs,
    a: &StatusArgs,
    resolver: &Resolver,
    catalog: Option<&CatalogIndex>,
) -> Result<(String, Got<Vec<state::Row>>)> {
    let namespaces = Namespaces {
        namespace: g.namespace.clone(),
        all: g.namespace.is_none(),
    };
    let airflow_scope = match &g.namespace {
        Some(n) => format!("namespace {n}"),
        None => "all namespaces".into(),
    };
    let airflow = match load::list_workloads(cluster, &namespaces, &[]).await {
        Ok((scope, snap, workloads)) => {
            let matcher = RuntimeMatcher::new(&a.runtime.runtime_repository, a.runtime.all_images);
            let resolved =
                load::resolve_runtime_with(cluster, &scope, &workloads, &matcher, resolver).await;
            Got::Found(
                show_report::report_with_catalog(
                    &workloads, &snap.pods, &matcher, &resolved, catalog,
                )
                .items,
            )
        }
        Err(e) if e.kind == ErrorKind::Forbidden => {
            Got::Unreadable(unreadable_from(&e, "Airflow workloads"))
        }
        Err(e) if matches!(e.kind, ErrorKind::Unreachable | ErrorKind::Unauthorized) => {
            return Err(e)
        }
        Err(e) => Got::Unreadable(unreadable_from(
            &e,
            &format!("Airflow workloads in {airflow_scope}"),
        )),
    };

    Ok((airflow_scope, airflow))
}

/// `status --contexts LIST` / `--all-contexts`: one row per platform (context, platform
/// namespace and chart version, feature flag, releases ConfigMap, releases pinned / drifted /
/// tag-only, and the context's state with its reason), then each platform's own report under
/// its context's name. One resolver serves every context.
mod across {
    use serde::Serialize;

    use super::{gather, render, report, StatusArgs};
    use crate::args::GlobalArgs;
    use crate::commands::operations::contexts::{self, Failure, PerContext};
    use crate::core::contexts::{exit_code, Outcome};
    use crate::core::status_report::{context_state, feature_word, releases_word, StatusReport};
    use crate::error::{ExitStatus, Result};
    use crate::output::{self, Table};

    /// What one context gave: its state, why (when not in order), and its report.
    struct Read {
        state: Outcome,
        reason: Option<String>,
        report: StatusReport,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Item<'a> {
        context: &'a str,
        state: Outcome,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Why the context could not be read at all.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<Failure>,
        #[serde(flatten)]
        report: Option<&'a StatusReport>,
    }

    #[derive(Serialize)]
    struct Across<'a> {
        items: Vec<Item<'a>>,
    }

    pub(super) async fn run(
        g: &GlobalArgs,
        a: &StatusArgs,
        names: &[String],
    ) -> Result<ExitStatus> {
        let resolver = a.registry.resolver(false)?;
        let results = contexts::each(&g.connect(), names, |cluster| {
            let resolver = &resolver;
            async move {
                let facts = gather(&cluster, g, a, resolver).await?;
                let report = report(&facts);
                let state = context_state(&facts, &report);
                Ok(Read {
                    state: state.outcome,
                    reason: state.why,
                    report,
                })
            }
        })
        .await;
        let items: Vec<Item> = results.iter().map(item).collect();
        let code = exit_code(&items.iter().map(|i| i.state).collect::<Vec<_>>(), a.check);
        match output::structured(&Across { items }, g.output)? {
            Some(s) => output::print(&s)?,
            None => output::print(&render_all(g, &results))?,
        }
        if code == ExitStatus::NotOk {
            let bad: Vec<&str> = results
                .iter()
                .filter(|p| p.result.as_ref().is_ok_and(|r| r.state != Outcome::Ok))
                .map(|p| p.context.as_str())
                .collect();
            eprintln!(
                "check failed: {} of {} platforms are not in order: {}",
                bad.len(),
                results.len(),
                bad.join(", ")
            );
        }
        Ok(code)
    }

    fn item(p: &PerContext<Read>) -> Item<'_> {
        match &p.result {
            Ok(r) => Item {
                context: &p.context,
                state: r.state,
                reason: r.reason.clone(),
                error: None,
                report: Some(&r.report),
            },
            Err(e) => {
                let (state, failure) = Failure::of(e);
                Item {
                    context: &p.context,
                    state,
                    reason: Some(failure.message.clone()),
                    error: Some(failure),
                    report: None,
                }
            }
        }
    }

    fn summary_row(p: &PerContext<Read>) -> Vec<String> {
        let dash = || "-".to_string();
        match &p.result {
            Ok(read) => {
                let r = &read.report;
                let by = |k: &str| match r.deployments.readable {
                    true => r
                        .deployments
                        .by_state
                        .get(k)
                        .copied()
                        .unwrap_or(0)
                        .to_string(),
                    false => dash(),
                };
                vec![
                    p.context.clone(),
                    r.platform.namespace.clone().unwrap_or_else(dash),
                    r.platform.chart_version.clone().unwrap_or_else(dash),
                    feature_word(r).to_string(),
                    releases_word(r),
                    by("pinned"),
                    by("drifted"),
                    by("tag-only"),
                    read.state.label().to_string(),
                    read.reason.clone().unwrap_or_default(),
                ]
            }
            Err(e) => {
                let mut row = vec![p.context.clone()];
                row.extend((0..7).map(|_| dash()));
                row.push(Outcome::from_error(e.kind).label().to_string());
                row.push(e.message.clone());
                row
            }
        }
    }

    fn render_all(g: &GlobalArgs, results: &[PerContext<Read>]) -> String {
        let mut t = Table::new([
            "CONTEXT",
            "PLATFORM",
            "CHART",
            "FEATURE",
            "RELEASES CONFIGMAP",
            "PINNED",
            "DRIFTED",
            "TAG-ONLY",
            "STATE",
            "REASON",
        ])
        .cut_middle(&["REASON"]);
        for p in results {
            t.push(summary_row(p));
        }
        let mut s = t.render(g.no_headers);
        let color = output::color_enabled();
        for p in results {
            if let Ok(read) = &p.result {
                s.push_str(&format!("\n=== context {} ===\n", output::safe(&p.context)));
                s.push_str(&render(
                    &read.report,
                    g.output == crate::args::OutputFormat::Wide,
                    g.no_headers,
                    color,
                ));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_messages_shorten() {
        // As kube::client::api_error makes them from the API server's 403.
        let refused = |msg: &str, resource: &str, ns: Option<&str>| {
            let status = kube::core::Status::failure(msg, "Forbidden").with_code(403);
            crate::kube::client::api_error(
                kube::Error::Api(status.boxed()),
                "list",
                resource,
                ns,
                "https://127.0.0.1",
            )
        };
        let e = refused(
            "deployments.apps is forbidden: User ...",
            "deployments.apps",
            Some("x"),
        );
        assert_eq!(
            unreadable_from(&e, "w"),
            "deployments.apps in namespace x (forbidden)"
        );
        let e = refused("pods is forbidden", "pods", None);
        assert_eq!(unreadable_from(&e, "w"), "pods (forbidden)");
        // The kind decides, not the wording: another error is kept whole.
        let e = Error::new("forbidden: cannot list pods: pods is forbidden");
        assert_eq!(
            unreadable_from(&e, "w"),
            "w: forbidden: cannot list pods: pods is forbidden"
        );
    }
}
