//! Names the platform and this tool agree on, spelled once: labels, ConfigMap keys, annotations,
//! defaults. Where a name comes from Astronomer's charts: github.com/astronomer/astronomer (the
//! platform chart) and github.com/astronomer/airflow-chart (each Airflow Deployment).

/// `astro-sha.astronomer.io/<name>`: the annotations this tool writes.
macro_rules! annotation {
    ($name:literal) => {
        concat!("astro-sha.astronomer.io/", $name)
    };
}

/// Houston's API Deployment carries `component=houston` (its worker is `houston-worker`).
pub(crate) const HOUSTON_SELECTOR: &str = "component=houston";
/// Every Airflow Deployment's workloads carry `tier=airflow` (and `release=<release>`).
pub(crate) const AIRFLOW_SELECTOR: &str = "tier=airflow";
/// The key of `<release>-houston-config` that holds the user's `astronomer.houston.config`.
pub(crate) const LOCAL_PRODUCTION_KEY: &str = "local-production.yaml";
/// The key of the releases ConfigMap that the chart mounts (with `subPath`) into Houston.
pub(crate) const RELEASES_DATA_KEY: &str = "astro_runtime_releases.json";
/// The releases ConfigMap's default name (`astronomer.houston.runtimeReleasesConfigMapName`).
pub(crate) const DEFAULT_RELEASES_CONFIGMAP: &str = "astro-runtime-base-images";
/// The key of `<release>-config` holding the KubernetesExecutor pod template.
pub(crate) const POD_TEMPLATE_KEY: &str = "pod_template_file.yaml";
/// Where a catalog entry keeps its digest unless `--digest-field` says otherwise.
pub(crate) const DEFAULT_DIGEST_FIELD: &str = "sha256";
/// Airflow 2 Runtime images (`runtimeVersions`).
pub(crate) const AIRFLOW2_REPOSITORY: &str = "quay.io/astronomer/astro-runtime";
/// Airflow 3 Runtime images (`runtimeVersionsV3`).
pub(crate) const AIRFLOW3_REPOSITORY: &str = "astrocrpublic.azurecr.io/runtime";

/// `app.kubernetes.io/managed-by` of what this tool creates.
pub(crate) const MANAGED_BY: &str = "astro-sha";
/// The images a pin replaced, so `unpin` restores them exactly. Kubernetes wants an annotation
/// prefix its owner controls: `astro-sha.github.io` is the GitHub Pages domain of the `astro-sha`
/// organisation that owns this repository (and so is the project's).
pub(crate) const ORIGINAL_IMAGES_ANNOTATION: &str = "astro-sha.github.io/original-images";
/// Where builds before v0.1.0 wrote the records (`astronomer.io` is not the project's domain):
/// read, so objects pinned by those builds still unpin, and removed when rewritten; never written.
pub(crate) const LEGACY_ORIGINAL_IMAGES_ANNOTATION: &str = annotation!("original-images");
/// On the releases ConfigMap: where the catalog came from.
pub(crate) const SOURCE_ANNOTATION: &str = annotation!("source");
/// On the releases ConfigMap: when it was imported (RFC 3339).
pub(crate) const IMPORTED_AT_ANNOTATION: &str = annotation!("imported-at");
/// On the releases ConfigMap: when `import` last changed its catalog (RFC 3339). Unlike
/// `imported-at`, an import that changed nothing leaves it alone: `status` compares Houston's
/// pod start times with it.
pub(crate) const CATALOG_CHANGED_AT_ANNOTATION: &str = annotation!("catalog-changed-at");
/// On the releases ConfigMap: how many versions it lists.
pub(crate) const VERSIONS_ANNOTATION: &str = annotation!("versions");
/// On the releases ConfigMap: how many of them have a digest.
pub(crate) const DIGESTS_ANNOTATION: &str = annotation!("digests");
/// On the releases ConfigMap: the `--digest-field` the import used, for later commands.
pub(crate) const DIGEST_FIELD_ANNOTATION: &str = annotation!("digest-field");

/// The log target of the one line per HTTP request (API server and registries) that `-v=6`
/// shows, as kubectl does.
pub(crate) const REQUEST_LOG_TARGET: &str = "kubectl_astro_sha::requests";

/// The User-Agent of every request the plugin sends: API server, registries and the catalog
/// download. The API server records a write without a field manager under the part before `/`.
pub(crate) const USER_AGENT: &str = concat!("kubectl-astro-sha/", env!("CARGO_PKG_VERSION"));
