//! Plans: what a pin or an unpin changes, computed from the model alone. Workloads, their pods and
//! registry (or catalog) digests in; rows to show, object edits to apply and per-release problems
//! out. Any problem in a release stops the whole run before anything is written; a refused row
//! (a container this run leaves alone, with the reason) lets the rest go on and ends in exit 1.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Serialize, Serializer};

use crate::core::catalog::{self, Section};
use crate::core::catalog_index::{CatalogIndex, VersionSource};
use crate::core::edit::{self, ImageEdit, ObjectEdit, RecordState, Recorded, Records};
use crate::core::image_ref::ImageRef;
use crate::core::inventory::{
    self, ContainerImage, Kind, PodImages, Role, Running, RuntimeMatcher, Workload,
};
use crate::core::pullsecrets::Resolutions;
use crate::core::resolution::Resolved;
use crate::core::short_digest;
use crate::core::state::lookup_ref;

/// What a plan does to one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Pin the tag to its digest.
    Pin,
    /// Pin the tag to the build the release already pins for it; the tag itself now points to
    /// `now` (one build per Runtime version inside a release; `--repin` moves them all).
    PinReleaseBuild { now: String },
    /// Already pinned, but the tag moved and `--repin` was given.
    Repin,
    /// Already pinned, the tag moved, and the pin is kept (the tag now points to `now`).
    KeptMoved { now: String },
    /// Already pinned; nothing to do.
    AlreadyPinned,
    /// Already pinned (by the platform or by hand), and the earlier pin's record is stale: the
    /// record is dropped, the image is left as it is.
    StaleRecordDropped,
    /// Unpin: the container still runs what the pin wrote.
    Unpin,
    /// Unpin with `--force`: the container runs something else, restored anyway.
    UnpinForced,
    /// Unpin: the container runs its original image already.
    NotPinned,
    /// Left as it is, for this reason; the run ends with exit 1.
    Refused { reason: String },
    /// Left as it is: Houston renders the build the pin wrote as `repository@sha256:…` now (the
    /// feature on); the pin's record is superseded. Restoring the tag would undo Houston's digest.
    LeftToHouston,
}

impl Action {
    /// Whether the row writes something.
    pub(crate) fn changes(&self) -> bool {
        matches!(
            self,
            Action::Pin
                | Action::PinReleaseBuild { .. }
                | Action::Repin
                | Action::StaleRecordDropped
                | Action::Unpin
                | Action::UnpinForced
        )
    }

    /// Whether the row changes the container's image (not only the bookkeeping).
    pub(crate) fn changes_image(&self) -> bool {
        self.changes() && *self != Action::StaleRecordDropped
    }

    /// One word for the default table; the sentence (`Display`) is in `-o wide` and JSON.
    pub(crate) fn word(&self) -> &'static str {
        match self {
            Action::Pin | Action::PinReleaseBuild { .. } => "pin",
            Action::Repin => "repin",
            Action::KeptMoved { .. } => "keep",
            Action::AlreadyPinned | Action::NotPinned => "none",
            Action::StaleRecordDropped => "forget",
            Action::Unpin => "unpin",
            Action::UnpinForced => "forced",
            Action::Refused { .. } => "refuse",
            Action::LeftToHouston => "leave",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Pin => f.write_str("pin"),
            Action::PinReleaseBuild { now } => write!(
                f,
                "pin: the build the release already pins for this tag (the tag now points to {}; --repin moves them all)",
                short_digest(now)
            ),
            Action::Repin => f.write_str("repin: tag moved"),
            Action::KeptMoved { now } => write!(
                f,
                "kept: tag now points to {} (use --repin)",
                short_digest(now)
            ),
            Action::AlreadyPinned => f.write_str("unchanged: already pinned"),
            Action::StaleRecordDropped => f.write_str(
                "unchanged: already pinned; the stale original-images record is dropped",
            ),
            Action::Unpin => f.write_str("unpin"),
            Action::UnpinForced => f.write_str("unpin (forced)"),
            Action::NotPinned => f.write_str("unchanged: not pinned"),
            Action::Refused { reason } => write!(f, "refused: {reason}"),
            Action::LeftToHouston => f.write_str(
                "unchanged: Houston renders the pinned build as repository@sha256 now (the pin's record is superseded)",
            ),
        }
    }
}

impl Action {
    /// Why, when the word alone does not say it: the JSON/YAML `reason` beside `action`.
    pub(crate) fn reason(&self) -> Option<String> {
        match self {
            Action::Pin | Action::Unpin => None,
            Action::PinReleaseBuild { now } => Some(format!(
                "the build the release already pins for this tag (the tag now points to {now}; --repin moves them all)"
            )),
            Action::Repin => Some("the tag moved".into()),
            Action::KeptMoved { now } => Some(format!(
                "the tag now points to {now}; the pin is kept (--repin moves it)"
            )),
            Action::AlreadyPinned => Some("already pinned".into()),
            Action::StaleRecordDropped => {
                Some("already pinned; the stale original-images record is dropped".into())
            }
            Action::UnpinForced => Some(
                "--force: the container no longer holds the image the pin wrote; the recorded original is restored anyway".into(),
            ),
            Action::NotPinned => Some("not pinned".into()),
            Action::Refused { reason } => Some(reason.clone()),
            Action::LeftToHouston => Some(
                "Houston renders the pinned build as repository@sha256 now; the pin's record is superseded".into(),
            ),
        }
    }
}

/// In JSON/YAML a row carries `action`, one of the stable words of the table (`pin`, `repin`,
/// `keep`, `none`, `forget`, `unpin`, `forced`, `refuse`, `leave`), and `reason`, the sentence, when
/// there is one (scripts compare the word; people read the reason). Flattened into the row.
impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let reason = self.reason();
        let mut m = s.serialize_map(Some(1 + usize::from(reason.is_some())))?;
        m.serialize_entry("action", self.word())?;
        if let Some(r) = reason {
            m.serialize_entry("reason", &r)?;
        }
        m.end()
    }
}

/// Whether a row changes the image its pods run now (`imageID`), once they roll.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RunningChange {
    /// The row changes no image.
    None,
    /// The pods already run the target build: they roll, but keep the image.
    Same,
    /// Some or all pods run another build: after the roll they run a different image.
    Changes,
    /// No pod says what it runs (a CronJob, the pod template, pods not started), or the target
    /// is a tag whose build this run did not look up.
    Unknown,
}

impl RunningChange {
    pub(crate) fn cell(self) -> &'static str {
        match self {
            RunningChange::None => "-",
            RunningChange::Same => "same",
            RunningChange::Changes => "changes",
            RunningChange::Unknown => "unknown",
        }
    }

    fn of(target: Option<&str>, running: &Running) -> RunningChange {
        let Some(to) = target.and_then(|t| ImageRef::parse(t).ok()) else {
            return RunningChange::Unknown;
        };
        match (to.digest(), running) {
            (_, Running::Unknown) | (None, _) => RunningChange::Unknown,
            (Some(d), Running::Digest(r)) if d == r => RunningChange::Same,
            _ => RunningChange::Changes,
        }
    }
}

/// One line of the plan.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PlanRow {
    pub(crate) namespace: String,
    pub(crate) release: String,
    pub(crate) workload: String,
    pub(crate) container: String,
    pub(crate) role: Role,
    pub(crate) from: String,
    pub(crate) to: Option<String>,
    /// The Runtime version of `from`: its tag, or for a tagless `repository@sha256:…` the
    /// version the releases catalog lists the digest for (see [`fill_versions`]).
    pub(crate) version: Option<String>,
    /// Where `version` comes from: `tag` or `catalog`.
    pub(crate) version_source: Option<VersionSource>,
    #[serde(flatten)]
    pub(crate) action: Action,
    /// Whether the pods' image changes (see [`RunningChange`]).
    pub(crate) running: RunningChange,
    /// Whether applying the row rolls the workload's pods (a Deployment or StatefulSet whose
    /// pod template changes; CronJobs and the pod template take it at their next pod).
    pub(crate) rolls: bool,
}

impl PlanRow {
    fn new(w: &Workload, c: &ContainerImage, to: Option<String>, action: Action) -> PlanRow {
        let tag = ImageRef::parse(&c.image)
            .ok()
            .and_then(|i| i.tag().map(str::to_string));
        PlanRow {
            namespace: w.namespace.clone(),
            release: w.release.clone(),
            workload: w.display_name(),
            container: c.container.clone(),
            role: c.role,
            from: c.image.clone(),
            to,
            version_source: tag.as_ref().map(|_| VersionSource::Tag),
            version: tag,
            rolls: action.changes_image() && rolls(w.kind),
            running: RunningChange::None,
            action,
        }
    }
}

/// Whether a pod template change makes the kind replace its pods now.
fn rolls(kind: Kind) -> bool {
    matches!(kind, Kind::Deployment | Kind::StatefulSet)
}

#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub(crate) rows: Vec<PlanRow>,
    pub(crate) edits: Vec<ObjectEdit>,
    /// Problems that stop the run (per release).
    pub(crate) problems: Vec<Problem>,
    pub(crate) notes: Vec<String>,
}

/// A problem that stops the run: the release it is in, and what is wrong (naming the object).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) release: String,
    pub(crate) message: String,
}

impl Problem {
    fn new(release: String, message: String) -> Problem {
        Problem { release, message }
    }
}

impl Plan {
    /// Rows this run leaves alone with a reason (exit 1).
    pub(crate) fn refused(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| matches!(r.action, Action::Refused { .. }))
            .count()
    }

    /// Per release, what applying the plan does: for the one-screen summary before the question.
    /// How many releases the plan's rows are in.
    pub(crate) fn releases(&self) -> usize {
        self.rows
            .iter()
            .map(|r| (&r.namespace, &r.release))
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    }

    pub(crate) fn summary(&self) -> Vec<ReleaseSummary> {
        let mut out: BTreeMap<(String, String), ReleaseSummary> = BTreeMap::new();
        for e in &self.edits {
            let s = out
                .entry((e.namespace.clone(), e.release.clone()))
                .or_insert_with(|| ReleaseSummary::new(&e.namespace, &e.release));
            s.objects += 1;
            let name = e.display_name();
            if !e.images.is_empty() && rolls(e.kind) {
                s.rolls.push(name);
            } else if !e.images.is_empty() {
                s.next_pod.push(name);
            }
        }
        for r in self.rows.iter().filter(|r| r.action.changes_image()) {
            let Some(s) = out.get_mut(&(r.namespace.clone(), r.release.clone())) else {
                continue;
            };
            if let Ok(img) = ImageRef::parse(&r.from) {
                s.repositories.insert(img.name());
            }
            let list = match r.running {
                RunningChange::Changes => &mut s.image_changes,
                RunningChange::Unknown => &mut s.image_unknown,
                _ => continue,
            };
            if !list.contains(&r.workload) {
                list.push(r.workload.clone());
            }
        }
        out.into_values().collect()
    }
}

/// What a plan does to one release, in a few lines.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReleaseSummary {
    pub(crate) namespace: String,
    pub(crate) release: String,
    /// Objects written.
    pub(crate) objects: usize,
    /// The image repositories whose references change (named once here, not per row).
    pub(crate) repositories: BTreeSet<String>,
    /// Deployments and StatefulSets whose pods roll.
    pub(crate) rolls: Vec<String>,
    /// CronJobs and the pod template: their next pod takes the change.
    pub(crate) next_pod: Vec<String>,
    /// Workloads whose pods will run another image than now.
    pub(crate) image_changes: Vec<String>,
    /// Workloads for which no pod says what runs now.
    pub(crate) image_unknown: Vec<String>,
}

impl ReleaseSummary {
    fn new(ns: &str, release: &str) -> ReleaseSummary {
        ReleaseSummary {
            namespace: ns.into(),
            release: release.into(),
            ..ReleaseSummary::default()
        }
    }

    /// A release needs attention before the question when the image its pods run changes: the
    /// roll (or the next pod) starts another build than the one running now.
    pub(crate) fn needs_attention(&self) -> bool {
        !self.image_changes.is_empty()
    }
}

/// Up to this many releases the summary before the question describes every release; past it
/// (unless `-o wide`) it shows totals and the releases that need attention, so that it fits a
/// screen at fleet size (issue 18).
pub(crate) const SUMMARY_RELEASES_LISTED: usize = 10;

/// Whether the summary of `releases` releases is the compact one (totals and attention).
pub(crate) fn compact_summary(releases: usize, wide: bool) -> bool {
    !wide && releases > SUMMARY_RELEASES_LISTED
}

/// A plan's summaries added up, for the compact summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SummaryTotals {
    pub(crate) releases: usize,
    pub(crate) objects: usize,
    /// Deployments and StatefulSets whose pods roll.
    pub(crate) rolls: usize,
    /// CronJobs and pod templates: their next pod takes the change.
    pub(crate) next_pod: usize,
    /// Each image repository that changes, with the number of releases it changes in.
    pub(crate) repositories: BTreeMap<String, usize>,
    /// Workloads whose pods will run another image than now.
    pub(crate) image_changes: usize,
    /// Workloads for which no pod says what runs now.
    pub(crate) image_unknown: usize,
    /// The releases that need attention ([`ReleaseSummary::needs_attention`]), in plan order.
    pub(crate) attention: Vec<usize>,
}

impl SummaryTotals {
    pub(crate) fn of(sums: &[ReleaseSummary]) -> SummaryTotals {
        let mut t = SummaryTotals {
            releases: sums.len(),
            ..SummaryTotals::default()
        };
        for (i, s) in sums.iter().enumerate() {
            t.objects += s.objects;
            t.rolls += s.rolls.len();
            t.next_pod += s.next_pod.len();
            t.image_changes += s.image_changes.len();
            t.image_unknown += s.image_unknown.len();
            for r in &s.repositories {
                *t.repositories.entry(r.clone()).or_default() += 1;
            }
            if s.needs_attention() {
                t.attention.push(i);
            }
        }
        t
    }
}

/// Where pin takes the digest of a tag-only container.
#[derive(Clone, Copy, Debug)]
pub(crate) enum DigestSource<'a> {
    /// What the registry says the tag points to now.
    Registry,
    /// The imported releases ConfigMap (the digests Houston renders).
    ConfigMap(&'a CatalogDigests),
    /// What the pods run now (`imageID`), frozen; refused where the pods disagree.
    Running,
}

/// Options for planning.
pub(crate) struct PlanOptions<'a> {
    pub(crate) drop_tag: bool,
    pub(crate) repin: bool,
    pub(crate) matcher: &'a RuntimeMatcher,
    pub(crate) source: DigestSource<'a>,
    /// The pods of the workloads in scope: what runs now.
    pub(crate) pods: &'a [PodImages],
}

/// Digests listed in the imported catalog, by generation and tag. Only valid digests are kept;
/// an entry whose digest field holds anything else is remembered as a problem (its message names
/// the entry), so that a pin that needs it stops instead of writing it or silently asking the
/// registry.
#[derive(Default, Debug)]
pub(crate) struct CatalogDigests {
    pub(crate) airflow2: HashMap<String, String>,
    pub(crate) airflow3: HashMap<String, String>,
    bad2: HashMap<String, String>,
    bad3: HashMap<String, String>,
}

impl CatalogDigests {
    /// Reads the catalog JSON; `field` is the dotted digest path inside each entry.
    pub(crate) fn from_catalog(json: &serde_json::Value, field: &catalog::DigestField) -> Self {
        let mut out = CatalogDigests::default();
        for (section, tag, digest) in catalog::entry_digests(json, field) {
            let (good, bad) = match section {
                Section::Airflow2 => (&mut out.airflow2, &mut out.bad2),
                Section::Airflow3 => (&mut out.airflow3, &mut out.bad3),
            };
            match digest {
                Ok(d) => good.insert(tag.to_string(), d),
                Err(e) => bad.insert(tag.to_string(), e),
            };
        }
        out
    }

    /// Airflow 3 Runtime lives in a repository named `runtime`; Airflow 2 in `astro-runtime`.
    pub(crate) fn lookup(&self, image: &ImageRef) -> Option<&String> {
        self.lookup_checked(image).ok().flatten()
    }

    /// [`Self::lookup`], but an entry for the image's tag whose digest is not valid is an error
    /// (the message names the entry and the value, escaped).
    pub(crate) fn lookup_checked(&self, image: &ImageRef) -> Result<Option<&String>, &str> {
        let Some(tag) = image.tag() else {
            return Ok(None);
        };
        let a3 = image.repository() == "runtime" || image.repository().ends_with("/runtime");
        let order = if a3 {
            [(&self.airflow3, &self.bad3), (&self.airflow2, &self.bad2)]
        } else {
            [(&self.airflow2, &self.bad2), (&self.airflow3, &self.bad3)]
        };
        for (good, bad) in order {
            if let Some(d) = good.get(tag) {
                return Ok(Some(d));
            }
            if let Some(e) = bad.get(tag) {
                return Err(e);
            }
        }
        Ok(None)
    }
}

fn moved(pin: &str, r: &Resolved) -> bool {
    r.digest != pin
        && r.platform_digest.as_deref() != Some(pin)
        && !r.platforms.iter().any(|p| p.digest == pin)
}

/// The tag reference (`registry/repository:tag`) a container runs a build of: its own tag, or,
/// for a `--drop-tag` pin, the tag its current record says it was pinned from.
fn tag_of(img: &ImageRef, record: Option<&Recorded>, image: &str) -> Option<String> {
    if img.tag().is_some() {
        return Some(img.without_digest().to_string());
    }
    let rec = record.filter(|r| RecordState::of(Some(r), image) == RecordState::Current)?;
    let orig = ImageRef::parse(&rec.original).ok()?;
    orig.tag()?;
    Some(orig.without_digest().to_string())
}

/// A release's builds per tag: tag reference -> digest -> the workloads pinned to it.
type Builds = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// Per release `(namespace, release)`: the digests its containers are pinned to, per tag, and
/// (for `--digest-source running`) the digests its pods agree on, per tag.
#[derive(Default)]
struct ReleaseBuilds {
    pinned: HashMap<(String, String), Builds>,
    running: HashMap<(String, String), Builds>,
}

impl ReleaseBuilds {
    fn collect(workloads: &[Workload], opts: &PlanOptions) -> ReleaseBuilds {
        let pods: Vec<&PodImages> = opts.pods.iter().collect();
        let mut out = ReleaseBuilds::default();
        for w in workloads.iter().filter(|w| w.problem.is_none()) {
            let key = (w.namespace.clone(), w.release.clone());
            let records = edit::parse_records(w.records_annotation());
            for c in &w.containers {
                let Ok(img) = ImageRef::parse(&c.image) else {
                    continue;
                };
                if !opts.matcher.is_runtime(&img) {
                    continue;
                }
                let rk = edit::record_key(c.role, &c.container);
                let Some(tag) = tag_of(&img, records.get(&rk), &c.image) else {
                    continue;
                };
                if let Some(d) = img.digest() {
                    add(&mut out.pinned, &key, &tag, d, w);
                } else if matches!(opts.source, DigestSource::Running) {
                    if let Ok(d) = inventory::running_agreed(w, c, &pods) {
                        add(&mut out.running, &key, &tag, &d, w);
                    }
                }
            }
        }
        out
    }
}

fn add(
    map: &mut HashMap<(String, String), Builds>,
    key: &(String, String),
    tag: &str,
    digest: &str,
    w: &Workload,
) {
    map.entry(key.clone())
        .or_default()
        .entry(tag.to_string())
        .or_default()
        .entry(digest.to_string())
        .or_default()
        .insert(w.display_name());
}

/// `sha256:abc… (deployment/x, statefulset/y)` for each build.
fn describe(builds: &BTreeMap<String, BTreeSet<String>>) -> String {
    builds
        .iter()
        .map(|(d, ws)| {
            let list: Vec<&str> = ws.iter().map(String::as_str).collect();
            format!("{} ({})", short_digest(d), list.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Pure: the edits that pin the given workloads.
pub(crate) fn plan(workloads: &[Workload], resolved: &Resolutions, opts: &PlanOptions) -> Plan {
    let mut out = Plan::default();
    let builds = ReleaseBuilds::collect(workloads, opts);
    let pods: Vec<&PodImages> = opts.pods.iter().collect();
    let mut with_runtime: BTreeSet<(String, String)> = BTreeSet::new();
    let mut releases: Vec<(String, String)> = vec![];
    let mut moved_noted: BTreeSet<(String, String)> = BTreeSet::new();
    for w in workloads {
        let key = (w.namespace.clone(), w.release.clone());
        if !releases.contains(&key) {
            releases.push(key.clone());
        }
        if let Some(problem) = &w.problem {
            out.problems.push(Problem::new(
                w.release.clone(),
                format!("{}: {problem}", w.display_name()),
            ));
            continue;
        }
        let ctx = Ctx {
            w,
            resolved,
            opts,
            builds: &builds,
            pods: &pods,
        };
        if plan_workload(&ctx, &mut out, &mut moved_noted) {
            with_runtime.insert(key);
        }
    }
    for (ns, rel) in releases {
        if !with_runtime.contains(&(ns.clone(), rel.clone())) {
            out.problems.push(Problem::new(rel.clone(), format!("release {rel} in namespace {ns} has no Runtime container (check --runtime-repository, or use --all-images)")));
        }
    }
    out
}

/// What planning one workload needs.
struct Ctx<'a> {
    w: &'a Workload,
    resolved: &'a Resolutions,
    opts: &'a PlanOptions<'a>,
    builds: &'a ReleaseBuilds,
    pods: &'a [&'a PodImages],
}

/// Plans one workload's Runtime containers into `out`; whether it has any.
fn plan_workload(ctx: &Ctx, out: &mut Plan, moved_noted: &mut BTreeSet<(String, String)>) -> bool {
    let w = ctx.w;
    let mut has_runtime = false;
    let before: Records = edit::parse_records(w.records_annotation());
    let mut records = before.clone();
    let mut edits: Vec<ImageEdit> = vec![];
    for c in &w.containers {
        let img = match ImageRef::parse(&c.image) {
            Ok(img) => img,
            Err(e) => {
                // A Runtime image with a broken reference: the release cannot be pinned
                // whole, so it is not pinned at all (a partial pin would hide it).
                if ctx.opts.matcher.looks_like_runtime(&c.image) {
                    has_runtime = true;
                    out.problems.push(Problem::new(
                        w.release.clone(),
                        format!(
                            "{} container {}: {e}; fix the workload's image, then pin",
                            w.display_name(),
                            c.container
                        ),
                    ));
                }
                continue;
            }
        };
        if !ctx.opts.matcher.is_runtime(&img) {
            continue;
        }
        has_runtime = true;
        let rk = edit::record_key(c.role, &c.container);
        let state = RecordState::of(records.get(&rk), &c.image);
        let (to, mut row) = match img.digest() {
            Some(pin) => pinned_target(ctx, c, &img, pin),
            None => tag_target(ctx, c, &img, records.get(&rk), out, moved_noted),
        };
        let running = inventory::running(w, c, ctx.pods);
        if let Some(to) = to {
            row.running = RunningChange::of(Some(&to), &running);
            // A current record keeps the user's original across a repin; a stale one (the
            // platform upgraded the image since) is replaced: the original is what is there now.
            match (state, records.get_mut(&rk)) {
                (RecordState::Current, Some(r)) => r.pinned = to.clone(),
                _ => {
                    records.insert(
                        rk,
                        Recorded {
                            original: c.image.clone(),
                            pinned: to.clone(),
                        },
                    );
                }
            }
            edits.push(ImageEdit {
                container: c.container.clone(),
                role: c.role,
                index: c.index,
                from: c.image.clone(),
                to,
            });
        } else if state == RecordState::Superseded {
            row = PlanRow::new(w, c, None, Action::LeftToHouston);
        } else if state == RecordState::Stale && img.digest().is_some() {
            // Already pinned by someone else (the platform renders digests): the earlier pin's
            // record would make unpin put an old image back. Dropped.
            records.remove(&rk);
            row = PlanRow::new(w, c, None, Action::StaleRecordDropped);
        }
        out.rows.push(row);
    }
    if !edits.is_empty() || records != before {
        if let Some(e) = object_edit(w, edits, &records, &before, out) {
            out.edits.push(e);
        }
    }
    has_runtime
}

/// A container already pinned to `pin`: kept, or moved with `--repin` when its tag moved.
fn pinned_target(
    ctx: &Ctx,
    c: &ContainerImage,
    img: &ImageRef,
    pin: &str,
) -> (Option<String>, PlanRow) {
    let w = ctx.w;
    let registry = lookup_ref(img).and_then(|l| ctx.resolved.get(ctx.w, l.original()));
    match registry {
        Some(Ok(r)) if moved(pin, r) => {
            let now = r.pin_digest().to_string();
            if ctx.opts.repin {
                let to = img.pinned(&now, ctx.opts.drop_tag);
                (
                    Some(to.clone()),
                    PlanRow::new(w, c, Some(to), Action::Repin),
                )
            } else {
                (None, PlanRow::new(w, c, None, Action::KeptMoved { now }))
            }
        }
        _ => (None, PlanRow::new(w, c, None, Action::AlreadyPinned)),
    }
}

/// A tag-only container: the digest from the source, or the one the release already pins for
/// the tag. `None` when it cannot be pinned (a problem, or a refused row).
fn tag_target(
    ctx: &Ctx,
    c: &ContainerImage,
    img: &ImageRef,
    record: Option<&Recorded>,
    out: &mut Plan,
    moved_noted: &mut BTreeSet<(String, String)>,
) -> (Option<String>, PlanRow) {
    let w = ctx.w;
    let key = (w.namespace.clone(), w.release.clone());
    let refuse = |reason: String| (None, PlanRow::new(w, c, None, Action::Refused { reason }));
    let source = match source_digest(ctx, c, img, out) {
        Ok(Some(d)) => d,
        Ok(None) => return (None, PlanRow::new(w, c, None, Action::Pin)),
        Err(reason) => return refuse(reason),
    };
    let tag = tag_of(img, record, &c.image).unwrap_or_else(|| img.original().to_string());
    let release_pins = ctx.builds.pinned.get(&key).and_then(|b| b.get(&tag));
    let pin = |d: &str, action: Action| {
        let to = img.pinned(d, ctx.opts.drop_tag);
        (Some(to.clone()), PlanRow::new(w, c, Some(to), action))
    };
    let Some(pins) = release_pins.filter(|_| !ctx.opts.repin) else {
        return pin(&source, Action::Pin);
    };
    let same = |d: &str| match ctx.resolved.get(ctx.w, &tag) {
        Some(Ok(r)) if matches!(ctx.opts.source, DigestSource::Registry) => !moved(d, r),
        _ => d == source,
    };
    if pins.len() > 1 {
        out.problems.push(Problem::new(w.release.clone(), format!(
            "tag {tag} is pinned to {} builds in this release: {}; pin cannot choose one for {} container {} (--repin moves the whole release to the tag's current digest, {})",
            pins.len(), describe(pins), w.display_name(), c.container, short_digest(&source)
        )));
        return (None, PlanRow::new(w, c, None, Action::Pin));
    }
    let Some((build, _)) = pins.iter().next() else {
        return pin(&source, Action::Pin);
    };
    if same(build) {
        return pin(build, Action::Pin);
    }
    if matches!(ctx.opts.source, DigestSource::Running) {
        return refuse(format!(
            "its pods run {}, but the release pins {tag} to {} ({}); freezing it would run two builds of one Runtime version",
            short_digest(&source), short_digest(build), describe(pins)
        ));
    }
    if moved_noted.insert((w.release.clone(), tag.clone())) {
        out.notes.push(format!(
            "release {} ({}): tag {tag} moved: the release pins {}, the tag now points to {}; its tag-only containers get the release's build too, so the release runs one build of this Runtime version (--repin moves the whole release to {})",
            w.release, w.namespace, describe(pins), short_digest(&source), short_digest(&source)
        ));
    }
    pin(build, Action::PinReleaseBuild { now: source })
}

/// The digest the source gives a tag-only container: `Ok(None)` with a problem recorded when the
/// release cannot be pinned, `Err` when this row is refused.
fn source_digest(
    ctx: &Ctx,
    c: &ContainerImage,
    img: &ImageRef,
    out: &mut Plan,
) -> Result<Option<String>, String> {
    let w = ctx.w;
    let registry = lookup_ref(img).and_then(|l| ctx.resolved.get(ctx.w, l.original()));
    let reg_digest = match registry {
        Some(Ok(r)) => Some(r.pin_digest().to_string()),
        _ => None,
    };
    match ctx.opts.source {
        DigestSource::Running => running_digest(ctx, c, img).map(Some),
        DigestSource::ConfigMap(m) => match m.lookup(img) {
            Some(cm) => {
                if let Some(reg) = reg_digest.as_ref().filter(|r| *r != cm) {
                    out.notes.push(format!(
                        "{} in {}/{}: the releases ConfigMap says {} but the registry says {}; using the ConfigMap's (Houston's)",
                        c.image, w.namespace, w.display_name(), cm, reg
                    ));
                }
                Ok(Some(cm.clone()))
            }
            None => {
                out.problems.push(Problem::new(w.release.clone(), format!("tag {} has no digest in the releases ConfigMap (run `kubectl astro-sha import` with this version selected, or pin from the registry without --from-configmap)", c.image)));
                Ok(None)
            }
        },
        DigestSource::Registry => match reg_digest {
            Some(d) => Ok(Some(d)),
            None => {
                let why = match registry {
                    Some(Err(e)) => e.to_string(),
                    _ => "no tag to resolve".into(),
                };
                out.problems.push(Problem::new(
                    w.release.clone(),
                    format!("cannot resolve {}: {why}", c.image),
                ));
                Ok(None)
            }
        },
    }
}

/// `--digest-source running`: the build every pod of the workload runs; for a workload without
/// pods of its own (a CronJob, the pod template), the one build the release's pods run for the
/// same tag.
fn running_digest(ctx: &Ctx, c: &ContainerImage, img: &ImageRef) -> Result<String, String> {
    let w = ctx.w;
    match inventory::running_agreed(w, c, ctx.pods) {
        Ok(d) => Ok(d),
        Err(reason) if !w.pod_selector.is_empty() => Err(reason),
        Err(reason) => {
            let key = (w.namespace.clone(), w.release.clone());
            let tag = img.original().to_string();
            let runs = ctx.builds.running.get(&key).and_then(|b| b.get(&tag));
            match runs.map(|r| (r.len(), r)) {
                Some((1, r)) => Ok(r.keys().next().cloned().unwrap_or_default()),
                Some((_, r)) => Err(format!(
                    "{reason}, and the release's pods run several builds of {tag}: {}",
                    describe(r)
                )),
                None => Err(format!(
                    "{reason}, and no pod of the release runs {tag} to freeze"
                )),
            }
        }
    }
}

/// The object edit for `w`'s image edits: the pod template text and the `original-images`
/// records, when they change. `None` (and a problem) when the template cannot be edited.
fn object_edit(
    w: &Workload,
    edits: Vec<ImageEdit>,
    records: &Records,
    before_records: &Records,
    out: &mut Plan,
) -> Option<ObjectEdit> {
    let template = match (&w.kind, &w.template_text) {
        (Kind::ConfigMap, Some(text)) if !edits.is_empty() => {
            match edit::template_after(text, &edits) {
                Ok(pair) => Some(pair),
                Err(e) => {
                    out.problems.push(Problem::new(
                        w.release.clone(),
                        format!("{}: {e}", w.display_name()),
                    ));
                    return None;
                }
            }
        }
        _ => None,
    };
    let old_ann = w.records_annotation().cloned();
    let new_ann = if records == before_records {
        old_ann.clone()
    } else if records.is_empty() {
        None
    } else {
        serde_json::to_string(records).ok()
    };
    Some(ObjectEdit {
        kind: w.kind,
        namespace: w.namespace.clone(),
        name: w.name.clone(),
        release: w.release.clone(),
        images: edits,
        template,
        annotation: (old_ann, new_ann),
        had_annotations: !w.annotations.is_empty(),
        legacy_record: w.records_at_legacy_key(),
    })
}

/// Gives each tagless `repository@sha256:…` row the Runtime version the releases catalog lists
/// its digest for (rows with a tag already carry theirs). Pure.
pub(crate) fn fill_versions(rows: &mut [PlanRow], catalog: &CatalogIndex) {
    for r in rows.iter_mut().filter(|r| r.version.is_none()) {
        let Ok(img) = ImageRef::parse(&r.from) else {
            continue;
        };
        if let Some(v) = catalog.judge(&img, None).and_then(|j| j.version) {
            r.version = Some(v);
            r.version_source = Some(VersionSource::Catalog);
        }
    }
}

/// Pure: the edits that restore recorded images. A container whose record is stale (its image is
/// no longer what the pin wrote: the platform upgraded it since, or someone changed it) is
/// refused, its record kept, unless `force`: restoring the recorded original would put an older
/// image back.
pub(crate) fn unpin_plan(workloads: &[Workload], force: bool) -> Plan {
    let mut out = Plan::default();
    for w in workloads {
        let Some(ann) = w.records_annotation() else {
            continue;
        };
        let records = match edit::parse_records_checked(ann) {
            Ok(r) => r,
            Err(e) => {
                out.problems.push(Problem::new(
                    w.release.clone(),
                    format!("{}: {e}", w.display_name()),
                ));
                continue;
            }
        };
        let mut edits = vec![];
        let mut kept = records.clone();
        for c in &w.containers {
            let key = edit::record_key(c.role, &c.container);
            let Some(rec) = records.get(&key) else {
                continue;
            };
            if let Err(e) = edit::check_original(rec) {
                out.problems.push(Problem::new(
                    w.release.clone(),
                    format!("{} container {}: {e}", w.display_name(), c.container),
                ));
                continue;
            }
            let (to, action) = unpin_action(w, c, rec, force);
            let mut row = PlanRow::new(w, c, to.clone(), action);
            if let Some(to) = to {
                row.running = RunningChange::Unknown;
                edits.push(ImageEdit {
                    container: c.container.clone(),
                    role: c.role,
                    index: c.index,
                    from: c.image.clone(),
                    to,
                });
            }
            if !matches!(row.action, Action::Refused { .. } | Action::LeftToHouston) {
                kept.remove(&key);
            }
            out.rows.push(row);
        }
        if edits.is_empty() && kept == records {
            continue;
        }
        if let Some(e) = object_edit(w, edits, &kept, &records, &mut out) {
            out.edits.push(ObjectEdit {
                had_annotations: true,
                ..e
            });
        }
    }
    out
}

/// What unpin does to one recorded container: the image it writes (if any) and the row's action.
fn unpin_action(
    w: &Workload,
    c: &ContainerImage,
    rec: &Recorded,
    force: bool,
) -> (Option<String>, Action) {
    if c.image == rec.original {
        return (None, Action::NotPinned);
    }
    match RecordState::of(Some(rec), &c.image) {
        RecordState::Current => (Some(rec.original.clone()), Action::Unpin),
        // Not even with --force: the tag would go back over Houston's own digest.
        RecordState::Superseded => (None, Action::LeftToHouston),
        _ if force => (Some(rec.original.clone()), Action::UnpinForced),
        _ => (
            None,
            Action::Refused {
                reason: format!(
                    "stale record: {} container {} is {}, not {} the pin wrote (the platform upgraded it since, or someone changed it); restoring the recorded {} could put an older Runtime back (--force restores it anyway)",
                    w.display_name(),
                    c.container,
                    c.image,
                    rec.pinned,
                    rec.original
                ),
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::inventory::{LEGACY_ORIGINAL_IMAGES_ANNOTATION, ORIGINAL_IMAGES_ANNOTATION};

    fn release_summary(i: usize, changes: &[&str]) -> ReleaseSummary {
        ReleaseSummary {
            namespace: format!("astronomer-r{i}"),
            release: format!("r{i}"),
            objects: 4,
            repositories: ["quay.io/astronomer/astro-runtime".to_string()].into(),
            rolls: vec![
                "deployment/a".into(),
                "deployment/b".into(),
                "deployment/c".into(),
            ],
            next_pod: vec!["configmap/r-config".into()],
            image_changes: changes.iter().map(|c| c.to_string()).collect(),
            image_unknown: vec!["configmap/r-config".into()],
        }
    }

    #[test]
    fn the_summary_is_compact_past_ten_releases_unless_wide() {
        assert!(!compact_summary(SUMMARY_RELEASES_LISTED, false));
        assert!(compact_summary(SUMMARY_RELEASES_LISTED + 1, false));
        assert!(!compact_summary(500, true));
    }

    #[test]
    fn totals_add_up_and_name_the_releases_whose_running_image_changes() {
        let sums: Vec<ReleaseSummary> = (0..30)
            .map(|i| {
                if i % 10 == 3 {
                    release_summary(i, &["deployment/a", "deployment/b"])
                } else {
                    release_summary(i, &[])
                }
            })
            .collect();
        let t = SummaryTotals::of(&sums);
        assert_eq!((t.releases, t.objects), (30, 120));
        assert_eq!((t.rolls, t.next_pod), (90, 30));
        assert_eq!((t.image_changes, t.image_unknown), (6, 30));
        assert_eq!(t.attention, vec![3, 13, 23]);
        assert_eq!(
            t.repositories,
            [("quay.io/astronomer/astro-runtime".to_string(), 30)].into()
        );
    }
    use crate::core::resolution::RegistryError;
    use std::collections::BTreeMap as Map;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const TAG: &str = "q.io/astronomer/astro-runtime:9.3.0";
    const NEW_TAG: &str = "q.io/astronomer/astro-runtime:9.4.0";

    #[test]
    fn a_row_in_json_has_the_tables_word_as_action_and_the_sentence_as_reason() {
        let row = |action| PlanRow {
            namespace: "ns".into(),
            release: "r".into(),
            workload: "deployment/r-web".into(),
            container: "web".into(),
            role: Role::Container,
            from: TAG.into(),
            to: None,
            version: Some("9.3.0".into()),
            version_source: Some(VersionSource::Tag),
            action,
            running: RunningChange::None,
            rolls: false,
        };
        let v = serde_json::to_value(row(Action::KeptMoved { now: D2.into() })).unwrap();
        assert_eq!(v["action"], "keep");
        assert_eq!(
            v["reason"],
            format!("the tag now points to {D2}; the pin is kept (--repin moves it)")
        );
        let v = serde_json::to_value(row(Action::Pin)).unwrap();
        assert_eq!(v["action"], "pin");
        assert!(v.get("reason").is_none(), "{v}");
        for a in [
            Action::Pin,
            Action::PinReleaseBuild { now: D1.into() },
            Action::Repin,
            Action::KeptMoved { now: D1.into() },
            Action::AlreadyPinned,
            Action::StaleRecordDropped,
            Action::Unpin,
            Action::UnpinForced,
            Action::NotPinned,
            Action::Refused { reason: "x".into() },
            Action::LeftToHouston,
        ] {
            let v = serde_json::to_value(row(a.clone())).unwrap();
            assert_eq!(v["action"], a.word(), "{a:?}");
        }
    }

    fn wl(kind: Kind, name: &str, images: &[(&str, &str)], ann: Option<String>) -> Workload {
        let mut annotations = Map::new();
        if let Some(a) = ann {
            annotations.insert(ORIGINAL_IMAGES_ANNOTATION.to_string(), a);
        }
        let selector = match kind {
            Kind::Deployment | Kind::StatefulSet => {
                Map::from([("component".to_string(), name.to_string())])
            }
            _ => Map::new(),
        };
        Workload {
            kind,
            namespace: "ns".into(),
            name: format!("r-{name}"),
            release: "r".into(),
            component: Some(name.into()),
            containers: images
                .iter()
                .enumerate()
                .map(|(i, (n, img))| ContainerImage {
                    container: n.to_string(),
                    role: Role::Container,
                    index: i,
                    image: img.to_string(),
                })
                .collect(),
            pod_selector: selector,
            annotations,
            pull_secrets: vec![],
            service_account: None,
            template_text: None,
            problem: None,
            resource_version: None,
        }
    }

    fn reg(pairs: &[(&str, &str)]) -> Resolutions {
        let map: HashMap<String, Result<Resolved, RegistryError>> = pairs
            .iter()
            .map(|(i, d)| {
                (
                    i.to_string(),
                    Ok(Resolved {
                        source: String::new(),
                        mirrored: false,
                        digest: d.to_string(),
                        media_type: String::new(),
                        platforms: vec![],
                        platform_digest: None,
                    }),
                )
            })
            .collect();
        Resolutions::from(map)
    }

    fn pod(component: &str, name: &str, container: &str, image_id: &str) -> PodImages {
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns", "labels": {"component": component}},
            "spec": {"containers": []},
            "status": {"containerStatuses": [{"name": container, "image": "x", "imageID": image_id,
                "ready": true, "restartCount": 0}]}
        }))
        .unwrap();
        PodImages::from(&pod)
    }

    fn opts<'a>(
        m: &'a RuntimeMatcher,
        source: DigestSource<'a>,
        pods: &'a [PodImages],
    ) -> PlanOptions<'a> {
        PlanOptions {
            drop_tag: false,
            repin: false,
            matcher: m,
            source,
            pods,
        }
    }

    fn record(original: &str, pinned: &str) -> String {
        serde_json::json!({"container:c": {"original": original, "pinned": pinned}}).to_string()
    }

    fn records_after(e: &ObjectEdit) -> Records {
        edit::parse_records(e.annotation.1.as_ref())
    }

    #[test]
    fn pin_replaces_a_stale_record_with_the_image_there_now() {
        // Pinned on 9.3.0, then the platform upgraded the release to 9.4.0 (a new tag; the
        // annotation survived). Pinning again records 9.4.0 as the original, not 9.3.0.
        let m = RuntimeMatcher::new(&[], false);
        let w = wl(
            Kind::Deployment,
            "web",
            &[("c", NEW_TAG)],
            Some(record(TAG, &format!("{TAG}@{D1}"))),
        );
        let r = reg(&[(NEW_TAG, D2)]);
        let p = plan(&[w], &r, &opts(&m, DigestSource::Registry, &[]));
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        let rec = records_after(&p.edits[0]);
        assert_eq!(rec["container:c"].original, NEW_TAG);
        assert_eq!(rec["container:c"].pinned, format!("{NEW_TAG}@{D2}"));
    }

    #[test]
    fn repin_keeps_a_current_records_original() {
        let m = RuntimeMatcher::new(&[], false);
        let pinned = format!("{TAG}@{D1}");
        let w = wl(
            Kind::Deployment,
            "web",
            &[("c", &pinned)],
            Some(record(TAG, &pinned)),
        );
        let r = reg(&[(TAG, D2)]);
        let mut o = opts(&m, DigestSource::Registry, &[]);
        o.repin = true;
        let p = plan(&[w], &r, &o);
        let rec = records_after(&p.edits[0]);
        assert_eq!(rec["container:c"].original, TAG);
        assert_eq!(rec["container:c"].pinned, format!("{TAG}@{D2}"));
    }

    #[test]
    fn a_platform_pinned_container_drops_its_stale_record() {
        let m = RuntimeMatcher::new(&[], false);
        let platform = format!("{NEW_TAG}@{D2}");
        let w = wl(
            Kind::Deployment,
            "web",
            &[("c", &platform)],
            Some(record(TAG, &format!("{TAG}@{D1}"))),
        );
        let p = plan(
            &[w],
            &reg(&[(NEW_TAG, D2)]),
            &opts(&m, DigestSource::Registry, &[]),
        );
        assert_eq!(p.rows[0].action, Action::StaleRecordDropped);
        assert!(p.edits[0].images.is_empty());
        assert_eq!(p.edits[0].annotation.1, None, "the only record is dropped");
        assert!(!p.rows[0].rolls, "only the annotation changes");
    }

    #[test]
    fn unpin_refuses_a_stale_record_unless_forced() {
        let stale = wl(
            Kind::Deployment,
            "web",
            &[("c", NEW_TAG)],
            Some(record(TAG, &format!("{TAG}@{D1}"))),
        );
        let p = unpin_plan(std::slice::from_ref(&stale), false);
        assert!(
            p.edits.is_empty(),
            "nothing written for a refused container"
        );
        assert_eq!(p.refused(), 1);
        assert!(p.rows[0].action.to_string().contains("stale record"));
        assert!(p.rows[0].action.to_string().contains("--force"));
        let p = unpin_plan(&[stale], true);
        assert_eq!(p.edits[0].images[0].to, TAG);
        assert_eq!(p.rows[0].action, Action::UnpinForced);
    }

    /// Pinned to `TAG@D1`, then Houston (feature on) re-rendered the same build as
    /// `repository@D1`: unpin leaves it, even with --force, writes nothing, keeps the record; a
    /// current container of the same object is still unpinned. pin leaves it too.
    #[test]
    fn houston_rendering_the_pinned_build_supersedes_the_record() {
        let m = RuntimeMatcher::new(&[], false);
        let houston = format!("q.io/astronomer/astro-runtime@{D1}");
        let only = wl(
            Kind::Deployment,
            "web",
            &[("c", &houston)],
            Some(record(TAG, &format!("{TAG}@{D1}"))),
        );
        for force in [false, true] {
            let p = unpin_plan(std::slice::from_ref(&only), force);
            assert!(p.edits.is_empty(), "nothing written (force {force})");
            assert_eq!(p.refused(), 0, "not a refusal");
            assert_eq!(p.rows[0].action, Action::LeftToHouston);
            assert_eq!(p.rows[0].action.word(), "leave");
        }
        let p = plan(
            std::slice::from_ref(&only),
            &Resolutions::default(),
            &opts(&m, DigestSource::Registry, &[]),
        );
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert!(p.edits.is_empty(), "pin writes nothing either");
        assert_eq!(p.rows[0].action, Action::LeftToHouston);

        let pinned = format!("{TAG}@{D1}");
        let both = serde_json::json!({
            "container:c": {"original": TAG, "pinned": pinned},
            "container:d": {"original": TAG, "pinned": pinned},
        })
        .to_string();
        let mixed = wl(
            Kind::Deployment,
            "web",
            &[("c", &pinned), ("d", &houston)],
            Some(both),
        );
        let p = unpin_plan(&[mixed], false);
        assert_eq!(p.edits[0].images.len(), 1);
        assert_eq!(p.edits[0].images[0].container, "c");
        let kept = records_after(&p.edits[0]);
        assert!(
            kept.contains_key("container:d"),
            "Houston's container keeps its record"
        );
        assert!(!kept.contains_key("container:c"));
    }

    #[test]
    fn plan_rows_carry_the_tag_or_the_catalogs_version() {
        let json = serde_json::json!({"runtimeVersions": {"9.3.0": {"sha256": D1}}});
        let index = CatalogIndex::from_json(&json, &catalog::DigestField::default());
        let w = wl(
            Kind::Deployment,
            "web",
            &[
                ("c", TAG),
                ("d", &format!("q.io/astronomer/astro-runtime@{D1}")),
            ],
            None,
        );
        let mut rows: Vec<PlanRow> = w
            .containers
            .iter()
            .map(|c| PlanRow::new(&w, c, None, Action::AlreadyPinned))
            .collect();
        assert_eq!(rows[0].version.as_deref(), Some("9.3.0"));
        assert_eq!(rows[0].version_source, Some(VersionSource::Tag));
        assert_eq!(rows[1].version, None);
        fill_versions(&mut rows, &index);
        assert_eq!(rows[1].version.as_deref(), Some("9.3.0"));
        assert_eq!(rows[1].version_source, Some(VersionSource::Catalog));
        let json = serde_json::to_value(&rows[1]).unwrap();
        assert_eq!(json["versionSource"], "catalog");
    }

    /// Records a build before v0.1.0 wrote, under the old key only: unpin restores from them and
    /// its edit removes that key (the patch itself: `core::edit`'s legacy test).
    #[test]
    fn unpin_reads_records_under_the_legacy_key() {
        let pinned = format!("{TAG}@{D1}");
        let mut w = wl(Kind::Deployment, "web", &[("c", &pinned)], None);
        w.annotations.insert(
            LEGACY_ORIGINAL_IMAGES_ANNOTATION.to_string(),
            record(TAG, &pinned),
        );
        let p = unpin_plan(std::slice::from_ref(&w), false);
        assert_eq!(p.rows[0].action, Action::Unpin);
        assert_eq!(p.edits[0].images[0].to, TAG);
        assert!(p.edits[0].legacy_record);
        assert_eq!(p.edits[0].annotation, (Some(record(TAG, &pinned)), None));
        // Both keys: the current one wins and the edit is an ordinary one.
        w.annotations
            .insert(ORIGINAL_IMAGES_ANNOTATION.to_string(), record(TAG, &pinned));
        assert!(!unpin_plan(&[w], false).edits[0].legacy_record);
    }

    #[test]
    fn unpin_restores_current_records_and_refuses_only_the_stale_one() {
        let pinned = format!("{TAG}@{D1}");
        let both = serde_json::json!({
            "container:c": {"original": TAG, "pinned": pinned},
            "container:d": {"original": TAG, "pinned": pinned},
        })
        .to_string();
        let w = wl(
            Kind::Deployment,
            "web",
            &[("c", &pinned), ("d", NEW_TAG)],
            Some(both),
        );
        let p = unpin_plan(&[w], false);
        assert_eq!(p.refused(), 1);
        assert_eq!(p.edits[0].images.len(), 1);
        assert_eq!(p.edits[0].images[0].container, "c");
        let kept = records_after(&p.edits[0]);
        assert!(kept.contains_key("container:d"), "the stale record stays");
        assert!(!kept.contains_key("container:c"));
    }

    #[test]
    fn a_tag_only_container_gets_the_build_the_release_already_pins() {
        // webserver pinned to the first build; the tag has moved since; the worker is tag-only.
        let m = RuntimeMatcher::new(&[], false);
        let first = format!("{TAG}@{D1}");
        let web = wl(
            Kind::Deployment,
            "web",
            &[("c", &first)],
            Some(record(TAG, &first)),
        );
        let worker = wl(Kind::StatefulSet, "worker", &[("c", TAG)], None);
        let r = reg(&[(TAG, D2)]);
        let p = plan(
            &[web.clone(), worker.clone()],
            &r,
            &opts(&m, DigestSource::Registry, &[]),
        );
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(p.edits.len(), 1);
        assert_eq!(
            p.edits[0].images[0].to, first,
            "the release's build, not the tag's new one"
        );
        assert_eq!(p.rows[1].action, Action::PinReleaseBuild { now: D2.into() });
        assert_eq!(p.rows[0].action, Action::KeptMoved { now: D2.into() });
        assert_eq!(p.notes.len(), 1);
        assert!(
            p.notes[0].contains("tag q.io/astronomer/astro-runtime:9.3.0 moved"),
            "{}",
            p.notes[0]
        );
        // --repin moves them all together.
        let mut o = opts(&m, DigestSource::Registry, &[]);
        o.repin = true;
        let p = plan(&[web, worker], &r, &o);
        let tos: Vec<&str> = p.edits.iter().map(|e| e.images[0].to.as_str()).collect();
        assert_eq!(tos, [format!("{TAG}@{D2}"), format!("{TAG}@{D2}")]);
    }

    #[test]
    fn two_builds_of_one_tag_in_a_release_is_a_problem() {
        let m = RuntimeMatcher::new(&[], false);
        let a = wl(
            Kind::Deployment,
            "a",
            &[("c", &format!("{TAG}@{D1}"))],
            None,
        );
        let b = wl(
            Kind::Deployment,
            "b",
            &[("c", &format!("{TAG}@{D2}"))],
            None,
        );
        let t = wl(Kind::Deployment, "t", &[("c", TAG)], None);
        let p = plan(
            &[a, b, t],
            &reg(&[(TAG, D2)]),
            &opts(&m, DigestSource::Registry, &[]),
        );
        assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
        assert!(p.problems[0].message.contains("2 builds"));
    }

    #[test]
    fn running_source_freezes_what_agreeing_pods_run_and_refuses_disagreement() {
        let m = RuntimeMatcher::new(&[], false);
        let id = |d: &str| format!("docker-pullable://q.io/astronomer/astro-runtime@{d}");
        let web = wl(Kind::Deployment, "web", &[("c", TAG)], None);
        let sched = wl(Kind::Deployment, "sched", &[("c", TAG)], None);
        let cm = wl(Kind::CronJob, "cron", &[("c", TAG)], None);
        let pods = vec![
            pod("web", "web-1", "c", &id(D1)),
            pod("web", "web-2", "c", &id(D1)),
            pod("sched", "sched-1", "c", &id(D1)),
            pod("sched", "sched-2", "c", &id(D2)),
        ];
        let p = plan(
            &[web, sched, cm],
            &Resolutions::default(),
            &opts(&m, DigestSource::Running, &pods),
        );
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        let by: Map<&str, &PlanRow> = p.rows.iter().map(|r| (r.workload.as_str(), r)).collect();
        assert_eq!(
            by["deployment/r-web"].to.as_deref(),
            Some(format!("{TAG}@{D1}").as_str())
        );
        assert_eq!(by["deployment/r-web"].running, RunningChange::Same);
        match &by["deployment/r-sched"].action {
            Action::Refused { reason } => {
                assert!(reason.contains("2 different builds"), "{reason}")
            }
            a => panic!("{a:?}"),
        }
        // The CronJob has no pods: it gets the build the release's pods agree on.
        assert_eq!(
            by["cronjob/r-cron"].to.as_deref(),
            Some(format!("{TAG}@{D1}").as_str())
        );
        assert_eq!(p.refused(), 1);
    }

    #[test]
    fn running_source_refuses_another_repository_and_missing_image_ids() {
        let m = RuntimeMatcher::new(&[], false);
        let web = wl(Kind::Deployment, "web", &[("c", TAG)], None);
        let other = vec![pod("web", "web-1", "c", &format!("q.io/other/thing@{D1}"))];
        let p = plan(
            std::slice::from_ref(&web),
            &Resolutions::default(),
            &opts(&m, DigestSource::Running, &other),
        );
        assert!(
            p.rows[0].action.to_string().contains("not a build of"),
            "{}",
            p.rows[0].action
        );
        let none = vec![pod("web", "web-1", "c", "")];
        let p = plan(
            &[web],
            &Resolutions::default(),
            &opts(&m, DigestSource::Running, &none),
        );
        assert!(
            p.rows[0].action.to_string().contains("no image digest"),
            "{}",
            p.rows[0].action
        );
        assert!(p.edits.is_empty());
    }

    #[test]
    fn rows_say_whether_the_running_image_changes_and_what_rolls() {
        let m = RuntimeMatcher::new(&[], false);
        let web = wl(Kind::Deployment, "web", &[("c", TAG)], None);
        let cron = wl(Kind::CronJob, "cron", &[("c", TAG)], None);
        let pods = vec![pod(
            "web",
            "web-1",
            "c",
            &format!("q.io/astronomer/astro-runtime@{D1}"),
        )];
        let p = plan(
            &[web, cron],
            &reg(&[(TAG, D2)]),
            &opts(&m, DigestSource::Registry, &pods),
        );
        assert_eq!(p.rows[0].running, RunningChange::Changes);
        assert!(p.rows[0].rolls);
        assert_eq!(p.rows[1].running, RunningChange::Unknown);
        assert!(!p.rows[1].rolls);
        let s = p.summary();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].objects, 2);
        assert_eq!(s[0].rolls, ["deployment/r-web"]);
        assert_eq!(s[0].next_pod, ["cronjob/r-cron"]);
        assert_eq!(s[0].image_changes, ["deployment/r-web"]);
        assert_eq!(
            s[0].repositories.iter().collect::<Vec<_>>(),
            ["q.io/astronomer/astro-runtime"]
        );
    }

    // Cases from the pin command's first tests: roles (init containers, sidecars), problems, and
    // the releases ConfigMap as the digest source.
    fn wl_roles(kind: Kind, images: &[(&str, Role, &str)]) -> Workload {
        Workload {
            kind,
            namespace: "ns".into(),
            name: "r-scheduler".into(),
            release: "r".into(),
            component: None,
            containers: images
                .iter()
                .enumerate()
                .map(|(i, (n, role, img))| ContainerImage {
                    container: n.to_string(),
                    role: *role,
                    index: i,
                    image: img.to_string(),
                })
                .collect(),
            pod_selector: Default::default(),
            annotations: Default::default(),
            pull_secrets: vec![],
            service_account: None,
            template_text: None,
            problem: None,
            resource_version: None,
        }
    }

    #[test]
    fn pins_runtime_only_and_records_originals() {
        let m = RuntimeMatcher::new(&[], false);
        let w = wl_roles(
            Kind::Deployment,
            &[
                ("wait", Role::Init, "q.io/astronomer/astro-runtime:1.0.0"),
                ("statsd", Role::Container, "q.io/statsd:1"),
            ],
        );
        let r = reg(&[("q.io/astronomer/astro-runtime:1.0.0", D1)]);
        let p = plan(
            &[w],
            &r,
            &PlanOptions {
                drop_tag: false,
                repin: false,
                matcher: &m,
                source: DigestSource::Registry,
                pods: &[],
            },
        );
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(p.edits.len(), 1);
        assert_eq!(p.edits[0].images.len(), 1);
        assert_eq!(
            p.edits[0].images[0].to,
            format!("q.io/astronomer/astro-runtime:1.0.0@{D1}")
        );
        let rec: Records = serde_json::from_str(p.edits[0].annotation.1.as_ref().unwrap()).unwrap();
        assert_eq!(
            rec["init:wait"].original,
            "q.io/astronomer/astro-runtime:1.0.0"
        );
    }

    #[test]
    fn already_pinned_is_a_noop_and_moved_tags_keep_their_pin() {
        let m = RuntimeMatcher::new(&[], false);
        let img = format!("q.io/astronomer/astro-runtime:1.0.0@{D1}");
        let w = wl_roles(Kind::Deployment, &[("s", Role::Container, &img)]);
        let same = reg(&[("q.io/astronomer/astro-runtime:1.0.0", D1)]);
        let p = plan(
            std::slice::from_ref(&w),
            &same,
            &PlanOptions {
                drop_tag: false,
                repin: false,
                matcher: &m,
                source: DigestSource::Registry,
                pods: &[],
            },
        );
        assert!(p.edits.is_empty());
        assert_eq!(p.rows[0].action, Action::AlreadyPinned);
        assert_eq!(p.rows[0].action.to_string(), "unchanged: already pinned");
        let moved_ = reg(&[("q.io/astronomer/astro-runtime:1.0.0", D2)]);
        let p = plan(
            std::slice::from_ref(&w),
            &moved_,
            &PlanOptions {
                drop_tag: false,
                repin: false,
                matcher: &m,
                source: DigestSource::Registry,
                pods: &[],
            },
        );
        assert!(p.edits.is_empty());
        assert_eq!(p.rows[0].action, Action::KeptMoved { now: D2.into() });
        assert_eq!(
            p.rows[0].action.to_string(),
            "kept: tag now points to sha256:222222222222 (use --repin)"
        );
        let p = plan(
            &[w],
            &moved_,
            &PlanOptions {
                drop_tag: false,
                repin: true,
                matcher: &m,
                source: DigestSource::Registry,
                pods: &[],
            },
        );
        assert_eq!(
            p.edits[0].images[0].to,
            format!("q.io/astronomer/astro-runtime:1.0.0@{D2}")
        );
    }

    #[test]
    fn unresolvable_tag_is_a_problem_and_no_runtime_is_a_problem() {
        let m = RuntimeMatcher::new(&[], false);
        let w = wl_roles(
            Kind::Deployment,
            &[("s", Role::Container, "q.io/astronomer/astro-runtime:9.9.9")],
        );
        let mut r = HashMap::new();
        r.insert(
            "q.io/astronomer/astro-runtime:9.9.9".to_string(),
            Err(RegistryError::NotFound {
                host: "q.io".into(),
                repository: "astronomer/astro-runtime".into(),
                reference: "9.9.9".into(),
            }),
        );
        let p = plan(
            &[w],
            &Resolutions::from(r.clone()),
            &PlanOptions {
                drop_tag: false,
                repin: false,
                matcher: &m,
                source: DigestSource::Registry,
                pods: &[],
            },
        );
        assert_eq!(p.problems.len(), 1);
        assert!(p.edits.is_empty());
        let w = wl_roles(
            Kind::Deployment,
            &[("statsd", Role::Container, "q.io/statsd:1")],
        );
        let p = plan(
            &[w],
            &Resolutions::default(),
            &PlanOptions {
                drop_tag: false,
                repin: false,
                matcher: &m,
                source: DigestSource::Registry,
                pods: &[],
            },
        );
        assert!(p.problems[0].message.contains("no Runtime container"));
    }

    #[test]
    fn a_broken_runtime_reference_stops_the_release() {
        let m = RuntimeMatcher::new(&[], false);
        let w = wl_roles(
            Kind::Deployment,
            &[
                ("ok", Role::Container, "q.io/astronomer/astro-runtime:1.0.0"),
                (
                    "typo",
                    Role::Container,
                    "q.io/astronomer/Astro-Runtime:1.0.0",
                ),
                ("other", Role::Container, "q.io/Some/Thing:1"),
            ],
        );
        let r = reg(&[("q.io/astronomer/astro-runtime:1.0.0", D1)]);
        let p = plan(
            &[w],
            &r,
            &PlanOptions {
                drop_tag: false,
                repin: false,
                matcher: &m,
                source: DigestSource::Registry,
                pods: &[],
            },
        );
        assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
        assert!(p.problems[0].message.contains("container typo"));
        assert!(p.problems[0].message.contains("Astro-Runtime"));
    }

    #[test]
    fn configmap_digests_win_and_disagreement_is_reported() {
        let m = RuntimeMatcher::new(&[], false);
        let w = wl_roles(
            Kind::Deployment,
            &[("s", Role::Container, "q.io/astronomer/astro-runtime:1.0.0")],
        );
        let cat = CatalogDigests::from_catalog(
            &serde_json::json!({"runtimeVersions": {"1.0.0": {"sha256": D2}}}),
            &catalog::DigestField::default(),
        );
        let r = reg(&[("q.io/astronomer/astro-runtime:1.0.0", D1)]);
        let p = plan(
            &[w],
            &r,
            &PlanOptions {
                drop_tag: true,
                repin: false,
                matcher: &m,
                source: DigestSource::ConfigMap(&cat),
                pods: &[],
            },
        );
        assert_eq!(
            p.edits[0].images[0].to,
            format!("q.io/astronomer/astro-runtime@{D2}")
        );
        assert_eq!(p.notes.len(), 1);
        let nested = CatalogDigests::from_catalog(
            &serde_json::json!({"runtimeVersionsV3": {"3.1-1": {"metadata": {"sha256": D1}}}}),
            &catalog::DigestField::parse("metadata.sha256").unwrap(),
        );
        assert_eq!(
            nested.lookup(&ImageRef::parse("x.io/runtime:3.1-1").unwrap()),
            Some(&D1.to_string())
        );
    }
}
