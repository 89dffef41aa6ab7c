//! The flag groups several commands share, and their conversion into ready objects, once:
//! connection options for the API server, the namespace scope, the registry resolver, the Runtime
//! matcher, the write mode. Names no command: commands flatten these groups into their own `Args`;
//! nothing below `commands` sees a flag.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, ValueEnum, ValueHint};

use crate::core::contexts;
use crate::core::inventory::RuntimeMatcher;
use crate::error::{Error, Result};
use crate::kube::client::{ConnectOptions, Namespaces};
use crate::kube::config::{Overrides, Token};
pub(crate) use crate::output::OutputFormat;
use crate::registry::{Mirror, PlatformSpec, Resolver};

/// The headings `--help` groups the shared flags under, after each command's own flags.
pub(crate) const CLUSTER_OPTIONS: &str = "Cluster options";
pub(crate) const REGISTRY_OPTIONS: &str = "Registry options";
pub(crate) const RUNTIME_OPTIONS: &str = "Runtime image options";
pub(crate) const OUTPUT_OPTIONS: &str = "Output options";

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct GlobalArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, which may list several files, or ~/.kube/config)
    #[arg(long, global = true, value_name = "FILE", value_hint = ValueHint::FilePath, help_heading = CLUSTER_OPTIONS)]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use
    #[arg(long, global = true, help_heading = CLUSTER_OPTIONS)]
    pub(crate) context: Option<String>,
    /// The kubeconfig cluster to use
    #[arg(long, global = true, help_heading = CLUSTER_OPTIONS)]
    pub(crate) cluster: Option<String>,
    /// The kubeconfig user to use
    #[arg(long, global = true, help_heading = CLUSTER_OPTIONS)]
    pub(crate) user: Option<String>,
    /// Namespace to look in (default: the context's namespace)
    #[arg(short = 'n', long, global = true, help_heading = CLUSTER_OPTIONS)]
    pub(crate) namespace: Option<String>,
    /// Look in every namespace
    #[arg(short = 'A', long, global = true, help_heading = CLUSTER_OPTIONS)]
    pub(crate) all_namespaces: bool,
    /// Timeout for each API server request, e.g. 30s or 1m
    #[arg(long, global = true, value_parser = parse_duration, value_name = "DURATION", help_heading = CLUSTER_OPTIONS)]
    pub(crate) request_timeout: Option<Duration>,
    /// Return large lists in chunks of this many objects rather than all at once (kubectl's flag); 0 = one request per list
    #[arg(long, global = true, default_value_t = crate::kube::client::DEFAULT_CHUNK_SIZE, value_name = "N", help_heading = CLUSTER_OPTIONS)]
    pub(crate) chunk_size: u32,
    /// Output format: table, wide, json or yaml (each command's help says which it has)
    #[arg(short = 'o', long, global = true, value_parser = OutputParser, default_value = "table", value_name = "FORMAT", help_heading = OUTPUT_OPTIONS)]
    pub(crate) output: OutputFormat,
    /// Don't print table headers
    #[arg(long, global = true, help_heading = OUTPUT_OPTIONS)]
    pub(crate) no_headers: bool,
    /// Log to stderr, as kubectl's -v=N / --v=N: 1-3 info, 4-5 debug, 6 one line per API request (method, URL, status, time), 7-8 our trace and the client libraries' debug, 9 everything down to HTTP/TLS traces. -v, -vv, -vvv, -vvvv, -vvvvv are 2, 4, 6, 8, 9
    #[arg(short = 'v', long = "verbose", global = true, action = ArgAction::Count, help_heading = OUTPUT_OPTIONS)]
    pub(crate) verbose: u8,
    /// kubectl's `-v=N` / `--v=N`, which `kubectl_argv` turns into this flag: clap cannot count
    /// `-vv` and take `-v=6` on one flag, and a one-letter long flag breaks fish completion
    /// (fish's argparse reads `v=` as a second short `-v`).
    #[arg(long = KUBECTL_V, global = true, hide = true, value_name = "N", value_parser = parse_kubectl_v)]
    pub(crate) v: Option<u8>,
    /// The address and port of the Kubernetes API server (replaces the kubeconfig's)
    #[arg(short = 's', long, global = true, value_name = "URL", help_heading = CLUSTER_OPTIONS)]
    pub(crate) server: Option<String>,
    /// Bearer token for authentication to the API server (replaces the kubeconfig user's credentials)
    #[arg(long, global = true, value_name = "TOKEN", value_parser = Token::parse, help_heading = CLUSTER_OPTIONS)]
    pub(crate) token: Option<Token>,
    /// Path to a cert file for the certificate authority of the API server
    #[arg(long, global = true, value_name = "FILE", value_hint = ValueHint::FilePath, help_heading = CLUSTER_OPTIONS)]
    pub(crate) certificate_authority: Option<PathBuf>,
    /// Don't check the API server's certificate. This makes your HTTPS connections insecure
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value_t = false, action = ArgAction::Set, value_name = "BOOL", help_heading = CLUSTER_OPTIONS)]
    pub(crate) insecure_skip_tls_verify: bool,
    /// Username to impersonate for the operation: a user, or a service account as system:serviceaccount:NAMESPACE:NAME
    #[arg(long = "as", global = true, value_name = "USER", help_heading = CLUSTER_OPTIONS)]
    pub(crate) impersonate: Option<String>,
    /// Group to impersonate for the operation (with --as); repeatable
    #[arg(
        long = "as-group",
        global = true,
        value_name = "GROUP",
        requires = "impersonate",
        help_heading = CLUSTER_OPTIONS
    )]
    pub(crate) impersonate_group: Vec<String>,
    /// UID to impersonate for the operation (with --as)
    #[arg(
        long = "as-uid",
        global = true,
        value_name = "UID",
        requires = "impersonate",
        help_heading = CLUSTER_OPTIONS
    )]
    pub(crate) impersonate_uid: Option<String>,
}

impl GlobalArgs {
    /// How to reach the API server.
    pub(crate) fn connect(&self) -> ConnectOptions {
        ConnectOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
            request_timeout: self.request_timeout,
            chunk_size: self.chunk_size,
            overrides: Overrides {
                server: self.server.clone(),
                token: self.token.clone(),
                certificate_authority: self.certificate_authority.clone(),
                insecure_skip_tls_verify: self.insecure_skip_tls_verify,
                impersonate: self.impersonate.clone(),
                impersonate_groups: self.impersonate_group.clone(),
                impersonate_uid: self.impersonate_uid.clone(),
            },
        }
    }

    /// How much to log, as a kubectl level (`-v=N`; see `init_logging`); `-v` counts are 2, 4,
    /// 6, 8 and 9 (info, debug, every API request, our trace, everything).
    pub(crate) fn verbosity(&self) -> u8 {
        let counted = match self.verbose {
            0 => 0,
            1 => 2,
            2 => 4,
            3 => 6,
            4 => 8,
            _ => 9,
        };
        counted.max(self.v.unwrap_or(0))
    }

    /// `-n` / `-A` as given.
    pub(crate) fn namespaces(&self) -> Namespaces {
        Namespaces {
            namespace: self.namespace.clone(),
            all: self.all_namespaces,
        }
    }
}

/// Several kubeconfig contexts in one run (`status`, `show`).
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct ContextsArgs {
    /// Run against several kubeconfig contexts at once: comma-separated names or globs, e.g. 'staging,prod-*' (see "Several platforms at once" in the README)
    #[arg(long, value_name = "LIST", conflicts_with = "all_contexts", help_heading = CLUSTER_OPTIONS)]
    pub(crate) contexts: Option<String>,
    /// Run against every context of the kubeconfig
    #[arg(long, help_heading = CLUSTER_OPTIONS)]
    pub(crate) all_contexts: bool,
}

impl ContextsArgs {
    /// The contexts `--contexts`/`--all-contexts` select, in the kubeconfig's order; `None`
    /// when neither is given (the one context of `--context`, as always).
    pub(crate) fn selected(&self, g: &GlobalArgs) -> Result<Option<Vec<String>>> {
        if self.contexts.is_none() && !self.all_contexts {
            return Ok(None);
        }
        if let Some(c) = &g.context {
            return Err(Error::new(format!(
                "--context {c} names one context; --contexts and --all-contexts name several"
            ))
            .hint("drop --context, or put it in the --contexts list"));
        }
        let available = crate::kube::config::context_names(g.kubeconfig.as_deref())?;
        let patterns = match &self.contexts {
            Some(list) => contexts::parse_list(list).map_err(Error::new)?,
            None => vec!["*".to_string()],
        };
        contexts::select(&patterns, &available)
            .map(Some)
            .map_err(|e| Error::new(e).hint("list them with `kubectl config get-contexts -o name`"))
    }
}

/// How to reach registries.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct RegistryArgs {
    /// Extra CA certificate (PEM) to trust for registries; repeatable
    #[arg(
        long = "registry-ca",
        value_name = "FILE",
        env = "ASTRO_SHA_REGISTRY_CA",
        value_delimiter = ',',
        help_heading = REGISTRY_OPTIONS
    )]
    pub(crate) registry_ca: Vec<PathBuf>,
    /// Allow plain HTTP or an unverified certificate for this registry host only; repeatable
    #[arg(
        long = "insecure-registry",
        value_name = "HOST",
        env = "ASTRO_SHA_INSECURE_REGISTRY",
        value_delimiter = ',',
        help_heading = REGISTRY_OPTIONS
    )]
    pub(crate) insecure_registry: Vec<String>,
    /// Resolve images under SRC against DST (air-gapped mirrors), e.g. quay.io=mirror.corp:5000; repeatable
    #[arg(long = "registry-mirror", value_name = "SRC=DST", env = "ASTRO_SHA_REGISTRY_MIRROR", value_delimiter = ',', value_parser = Mirror::parse, help_heading = REGISTRY_OPTIONS)]
    pub(crate) registry_mirror: Vec<Mirror>,
    /// Resolve the manifest of this platform inside multi-arch tags (os/arch[/variant]) instead of the index
    #[arg(long, value_parser = PlatformSpec::parse, value_name = "OS/ARCH[/VARIANT]", help_heading = REGISTRY_OPTIONS)]
    pub(crate) platform: Option<PlatformSpec>,
    /// Registry requests in flight at once per host over HTTP/1.1 (a connection each); a registry that speaks HTTP/2 gets one connection carrying up to 100 (or this many, if more)
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256), help_heading = REGISTRY_OPTIONS)]
    pub(crate) concurrency: u16,
    /// Timeout for one attempt of a registry request (connect, headers and body); each of --registry-retries is a new attempt
    #[arg(long = "registry-timeout", default_value = "20s", value_parser = parse_duration, value_name = "DURATION", help_heading = REGISTRY_OPTIONS)]
    pub(crate) registry_timeout: Duration,
    /// Retries for 429/500/502/503/504, transport errors and cut-short bodies (with backoff, honouring Retry-After)
    #[arg(long = "registry-retries", default_value_t = 3, help_heading = REGISTRY_OPTIONS)]
    pub(crate) registry_retries: u32,
}

impl RegistryArgs {
    /// The resolver options these flags ask for.
    pub(crate) fn options(&self, list_platforms: bool) -> crate::registry::Options {
        crate::registry::Options {
            ca_files: self.registry_ca.clone(),
            insecure: self.insecure_registry.clone(),
            mirrors: self.registry_mirror.clone(),
            concurrency: usize::from(self.concurrency),
            timeout: self.registry_timeout,
            retries: self.registry_retries,
            platform: self.platform.clone(),
            list_platforms,
            docker_config: true,
        }
    }

    /// The resolver, built once per run.
    pub(crate) fn resolver(&self, list_platforms: bool) -> Result<Resolver> {
        Resolver::new(self.options(list_platforms))
    }
}

/// Which images count as the Astro Runtime.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct RuntimeArgs {
    /// Repository that holds the Runtime image (registry/path); repeatable. Default: quay.io/astronomer/astro-runtime,
    /// astrocrpublic.azurecr.io/runtime and any repository whose path ends in astro-runtime or /runtime
    #[arg(
        long = "runtime-repository",
        value_name = "REPO",
        env = "ASTRO_SHA_RUNTIME_REPOSITORY",
        value_delimiter = ',',
        help_heading = RUNTIME_OPTIONS
    )]
    pub(crate) runtime_repository: Vec<String>,
    /// Consider every image, not only the Runtime
    #[arg(long, help_heading = RUNTIME_OPTIONS)]
    pub(crate) all_images: bool,
}

impl RuntimeArgs {
    pub(crate) fn matcher(&self) -> RuntimeMatcher {
        RuntimeMatcher::new(&self.runtime_repository, self.all_images)
    }
}

/// Where the platform (Houston) runs, for every command that reads or writes it.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct PlatformArgs {
    /// Namespace of the platform (where Houston runs). Default: found by Houston's label component=houston
    #[arg(long, value_name = "NAMESPACE", help_heading = CLUSTER_OPTIONS)]
    pub(crate) platform_namespace: Option<String>,
}

impl WriteArgs {
    /// How many releases are written at once (`--parallel-releases`, at least 1).
    pub(crate) fn parallel(&self) -> usize {
        usize::from(self.parallel_releases).max(1)
    }
}

/// `--dry-run[=client|server]`, as kubectl spells it, for every command that writes.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct DryRunArgs {
    /// client: print what would change, send nothing; server: have the API server validate the writes, store nothing
    #[arg(long, value_enum, num_args = 0..=1, default_value_t = DryRun::None, default_missing_value = "client", require_equals = true, value_name = "MODE")]
    pub(crate) dry_run: DryRun,
}

/// How a command that patches workloads asks first and rehearses (pin, unpin).
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct WriteArgs {
    /// Don't ask for confirmation
    #[arg(short = 'y', long)]
    pub(crate) yes: bool,
    /// Releases written at the same time (each in its own order, all or nothing); 1 = one after another
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=64), value_name = "N")]
    pub(crate) parallel_releases: u16,
    #[command(flatten)]
    pub(crate) dry: DryRunArgs,
}

/// `--dry-run[=client|server]`: a bare `--dry-run` means client.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum DryRun {
    #[default]
    None,
    /// Compute and print what would change; send nothing
    Client,
    /// Send the writes with dryRun=All: the API server validates and admits them, stores nothing
    Server,
}

/// `-o`: the four formats, and for kubectl's others (`name`, `jsonpath=...`, `go-template=...`,
/// `custom-columns=...`) an error that names the formats there are and how to get one field
/// (clap alone answered `-o jsonpath=...` with "a similar value exists: 'json'").
#[derive(Clone, Copy, Debug)]
pub(crate) struct OutputParser;

impl clap::builder::TypedValueParser for OutputParser {
    type Value = OutputFormat;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> std::result::Result<OutputFormat, clap::Error> {
        let s = value.to_string_lossy();
        OutputFormat::from_str(&s, false).map_err(|_| {
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!(
                    "invalid value '{s}' for '--output <FORMAT>': {}",
                    unsupported_output(&s)
                ) + "\n",
            )
            .with_cmd(cmd)
        })
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            OutputFormat::value_variants()
                .iter()
                .filter_map(ValueEnum::to_possible_value),
        ))
    }
}

/// Why `-o VALUE` is refused, and what to use instead.
fn unsupported_output(value: &str) -> String {
    let kind = value.split(['=', '{']).next().unwrap_or(value);
    let kubectl = [
        "name",
        "jsonpath",
        "jsonpath-as-json",
        "jsonpath-file",
        "go-template",
        "go-template-file",
        "template",
        "templatefile",
        "custom-columns",
        "custom-columns-file",
    ];
    let tip = if kubectl.contains(&kind) {
        format!(
            " kubectl's -o {kind} is not one of them: for one field, pipe -o json to jq, e.g. `kubectl astro-sha show -A -o json | jq -r '.items[].workload'`"
        )
    } else {
        String::new()
    };
    format!(
        "-o {value:?} is not an output format of kubectl astro-sha: the formats are table, wide, json and yaml (each command's --help says which it has).{tip}"
    )
}

/// The hidden flag kubectl's `-v=N` / `--v=N` become.
const KUBECTL_V: &str = "kubectl-verbosity";

fn parse_kubectl_v(s: &str) -> std::result::Result<u8, String> {
    s.parse::<u8>().map_err(|_| {
        format!("kubectl's -v=N / --v=N takes a log level 0-255, like -v=6 (got {s:?})")
    })
}

/// The command line with kubectl's spellings of the log level turned into one flag clap parses:
/// `-v=N`, `-vN`, `-v N` (a number after `-v` is the level, as in kubectl; `-v`, `-vv`, `-vvv`
/// stay counts), `--v=N` and `--v N`. Nothing after `--` is touched.
pub(crate) fn kubectl_argv<I>(args: I) -> Vec<std::ffi::OsString>
where
    I: IntoIterator<Item = std::ffi::OsString>,
{
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let level = |l: &std::ffi::OsStr| {
        let mut a = std::ffi::OsString::from(format!("--{KUBECTL_V}="));
        a.push(l);
        a
    };
    let mut out = Vec::new();
    let mut it = args.into_iter().peekable();
    let mut rest = false;
    while let Some(arg) = it.next() {
        if rest {
            out.push(arg);
            continue;
        }
        let Some(s) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if s == "--" {
            rest = true;
            out.push(arg);
        } else if let Some(l) = s.strip_prefix("-v=").or_else(|| s.strip_prefix("--v=")) {
            out.push(level(l.as_ref()));
        } else if let Some(l) = s.strip_prefix("-v").filter(|l| digits(l)) {
            out.push(level(l.as_ref()));
        } else if s == "--v" {
            // kubectl's int flag takes the next word, whatever it is
            out.push(level(&it.next().unwrap_or_default()));
        } else if s == "-v" && it.peek().and_then(|n| n.to_str()).is_some_and(digits) {
            out.push(level(&it.next().unwrap_or_default()));
        } else {
            out.push(arg);
        }
    }
    out
}

pub(crate) fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|e| format!("{s:?} is not a duration like 30s or 2m: {e}"))?;
    Duration::try_from(d).map_err(|_| format!("{s:?} is negative: give a duration like 30s or 2m"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The global flags as a command line gets them (after the same argv rewrite as main).
    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        g: GlobalArgs,
        rest: Vec<String>,
    }

    fn parse(args: &[&str]) -> Result<GlobalArgs, clap::Error> {
        let argv = kubectl_argv(
            std::iter::once("k")
                .chain(args.iter().copied())
                .map(std::ffi::OsString::from),
        );
        Cli::try_parse_from(argv).map(|c| c.g)
    }

    fn ok(args: &[&str]) -> GlobalArgs {
        parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn verbosity_as_kubectl_spells_it_and_as_counts() {
        for (args, want) in [
            (&["-v=6"][..], 6),
            (&["--v=6"], 6),
            (&["--v", "6"], 6),
            (&["-v", "6"], 6),
            (&["-v6"], 6),
            (&["-v=4"], 4),
            (&["-v=9"], 9),
            (&["-v=2"], 2),
            (&["-v=0"], 0),
            (&["-v"], 2),
            (&["-vv"], 4),
            (&["-vvv"], 6),
            (&["-vvvvv"], 9),
            (&["-vvvvvvv"], 9),
            (&["--verbose", "--verbose"], 4),
            (&["-vv", "--v=1"], 4),
            (&[], 0),
        ] {
            assert_eq!(ok(args).verbosity(), want, "{args:?}");
        }
        // -v before a word that is not a number stays a count; the word stays an argument
        let cli = Cli::try_parse_from(kubectl_argv(
            ["k", "-v", "release-1"].map(std::ffi::OsString::from),
        ))
        .unwrap();
        assert_eq!(
            (cli.g.verbosity(), cli.rest),
            (2, vec!["release-1".to_string()])
        );
        // --v alone at the end: a clear error, not a silent default
        assert!(parse(&["--v"]).is_err());
        // after --, nothing is rewritten
        assert_eq!(
            kubectl_argv(["k", "--", "-v=6"].map(std::ffi::OsString::from)),
            ["k", "--", "-v=6"].map(std::ffi::OsString::from)
        );
        for bad in [&["--v=lots"][..], &["-v=x"], &["--v=-1"]] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("--v"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn kubectl_connection_flags() {
        let g = ok(&[
            "--server",
            "https://10.0.0.1:6443",
            "--token",
            "abc",
            "--certificate-authority",
            "/ca.pem",
            "--as",
            "jane",
            "--as-group",
            "g1",
            "--as-group",
            "g2",
            "--as-uid",
            "42",
        ]);
        let o = g.connect().overrides;
        assert_eq!(o.server.as_deref(), Some("https://10.0.0.1:6443"));
        assert_eq!(o.token, Some(Token::parse("abc").unwrap()));
        assert_eq!(o.certificate_authority, Some(PathBuf::from("/ca.pem")));
        assert!(!o.insecure_skip_tls_verify);
        assert_eq!(o.impersonate.as_deref(), Some("jane"));
        assert_eq!(o.impersonate_groups, vec!["g1", "g2"]);
        assert_eq!(o.impersonate_uid.as_deref(), Some("42"));
        assert_eq!(
            ok(&["-s", "https://x"]).server.as_deref(),
            Some("https://x")
        );
        assert_eq!(
            ok(&["--server=https://x"]).server.as_deref(),
            Some("https://x")
        );
        assert_eq!(
            ok(&["--as=system:serviceaccount:ns:sa"])
                .impersonate
                .as_deref(),
            Some("system:serviceaccount:ns:sa")
        );
    }

    #[test]
    fn insecure_skip_tls_verify_as_a_bool_flag() {
        assert!(ok(&["--insecure-skip-tls-verify"]).insecure_skip_tls_verify);
        assert!(ok(&["--insecure-skip-tls-verify=true"]).insecure_skip_tls_verify);
        assert!(!ok(&["--insecure-skip-tls-verify=false"]).insecure_skip_tls_verify);
        assert!(!ok(&[]).insecure_skip_tls_verify);
        // the next word is not taken as its value
        let cli = Cli::try_parse_from(kubectl_argv(
            ["k", "--insecure-skip-tls-verify", "rel"].map(std::ffi::OsString::from),
        ))
        .unwrap();
        assert!(cli.g.insecure_skip_tls_verify);
        assert_eq!(cli.rest, vec!["rel"]);
    }

    #[test]
    fn as_group_and_as_uid_need_as_and_a_token_is_not_empty() {
        for bad in [
            &["--as-group", "g"][..],
            &["--as-uid", "1"],
            &["--token", ""],
            &["--token="],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let e = parse(&["--as-group", "g"]).unwrap_err().to_string();
        assert!(e.contains("--as <USER>"), "{e}");
    }

    #[test]
    fn a_token_is_not_in_the_debug_output() {
        let g = ok(&["--token", "s3cret-token"]);
        assert!(!format!("{g:?}").contains("s3cret-token"));
        assert!(!format!("{:?}", g.connect()).contains("s3cret-token"));
    }

    #[test]
    fn kubectls_other_output_formats_get_an_error_naming_the_ones_there_are() {
        assert_eq!(ok(&["-o", "wide"]).output, OutputFormat::Wide);
        assert_eq!(ok(&["-o=json"]).output, OutputFormat::Json);
        for bad in ["jsonpath={.items[*].image}", "name", "custom-columns=A:.a"] {
            let e = parse(&["-o", bad]).unwrap_err().to_string();
            assert!(
                e.contains("the formats are table, wide, json and yaml") && e.contains("| jq -r"),
                "{bad}: {e}"
            );
            assert!(!e.contains("similar value"), "{bad}: {e}");
        }
        let e = parse(&["-o", "xml"]).unwrap_err().to_string();
        assert!(
            e.contains("\"xml\" is not an output format") && !e.contains("jq"),
            "{e}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("soon").is_err());
        // humantime's spellings that users and docs use, now parsed by jiff's friendly format
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2 mins").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("-5s").is_err());
    }
}
