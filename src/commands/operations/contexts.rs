//! The fan-out `status` and `show` share across kubeconfig contexts (`--contexts`,
//! `--all-contexts`): connect to each selected context and run the command's own per-context
//! gather on it, at most `CONTEXTS_AT_ONCE` contexts at a time, keeping every context's result —
//! an error stays that context's, it never ends the others. Which contexts, and what a result
//! means, is decided in `core::contexts`.

use std::future::Future;

use futures::StreamExt;
use serde::Serialize;

use crate::core::contexts::{Outcome, CONTEXTS_AT_ONCE, DEFAULT_REQUEST_TIMEOUT};
use crate::error::{Error, Result};
use crate::kube::client::{Cluster, ConnectOptions};

/// One context's result, in the order the contexts were selected.
pub(crate) struct PerContext<T> {
    pub(crate) context: String,
    pub(crate) result: Result<T>,
}

/// Runs `gather` on every context (each with its own connection, `connect` otherwise as given),
/// `CONTEXTS_AT_ONCE` at a time. Without `--request-timeout`, each context's requests get
/// `DEFAULT_REQUEST_TIMEOUT`, so a silent API server holds its row, never the run, for long.
pub(crate) async fn each<T, F, Fut>(
    connect: &ConnectOptions,
    contexts: &[String],
    gather: F,
) -> Vec<PerContext<T>>
where
    F: Fn(Cluster) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let gather = &gather;
    futures::stream::iter(contexts)
        .map(|context| async move {
            let mut opts = connect.clone();
            opts.context = Some(context.clone());
            opts.request_timeout = opts.request_timeout.or(Some(DEFAULT_REQUEST_TIMEOUT));
            let result = match Cluster::connect(&opts).await {
                Ok(cluster) => gather(cluster).await,
                Err(e) => Err(e),
            };
            PerContext {
                context: context.clone(),
                result,
            }
        })
        .buffered(CONTEXTS_AT_ONCE)
        .collect()
        .await
}

/// Why a context has no report, for `-o json|yaml`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Failure {
    pub(crate) message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) hint: Option<String>,
}

impl Failure {
    pub(crate) fn of(e: &Error) -> (Outcome, Failure) {
        (
            Outcome::from_error(e.kind),
            Failure {
                message: e.message.clone(),
                hint: e.hint.clone(),
            },
        )
    }
}
