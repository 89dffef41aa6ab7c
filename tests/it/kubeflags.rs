//! kubectl's flags and habits (issue 13), against the real bed: `-v=N` as kubectl spells it;
//! `--as`/`--as-group` acting as another user; `--token`, `--server`,
//! `--certificate-authority`, `--insecure-skip-tls-verify` with and without a kubeconfig; the
//! in-cluster service account when there is no kubeconfig; the field manager on every write and
//! the User-Agent on every request (API server and registries).
//!
//! The kubectl facts these scenarios encode (kubectl 1.32 `kubectl options`, and client-go's
//! `tools/clientcmd`, `client_config.go` and `loader.go`):
//! - `--as`/`--as-group` send `Impersonate-User`/`Impersonate-Group`; the API server checks the
//!   caller may `impersonate` (system:masters may) and then authorizes the request as that user;
//!   a group without a user is refused (`--as-group` requires `--as`).
//! - `--token`, `--server`, `--certificate-authority`, `--insecure-skip-tls-verify` override the
//!   kubeconfig's current context; with no kubeconfig at all they are the whole configuration.
//!   A CA file together with `--insecure-skip-tls-verify` is refused ("specifying a root
//!   certificates file with the insecure flag is not allowed").
//! - Missing files named by `$KUBECONFIG` are skipped. With no usable kubeconfig and no
//!   `--server`, a process that sees `KUBERNETES_SERVICE_HOST`/`_PORT` and a service-account token
//!   file uses the service account (rest.InClusterConfig): token and CA from
//!   `/var/run/secrets/kubernetes.io/serviceaccount/`, the namespace from its `namespace` file.
//! - A write without `fieldManager` is recorded in `managedFields` under the User-Agent's product
//!   (before the first `/`), so kubectl's own writes name themselves; the plugin names itself
//!   `kubectl-astro-sha` both ways.
use crate::support;

use std::path::{Path, PathBuf};

use crate::support::faults::Proxy;
use crate::support::{airflow_release_yaml, Bed, Out};
use serde_json::{json, Value};

const REPO: &str = "astronomer/astro-runtime";
const TAG: &str = "12.1.0";
const FIELD_MANAGER: &str = "kubectl-astro-sha";
const USER_AGENT: &str = concat!("kubectl-astro-sha/", env!("CARGO_PKG_VERSION"));

/// A release on the bed in a namespace of its own (Runtime image on the plain registry).
fn release(bed: &Bed, prefix: &str) -> (support::TestNamespace, String) {
    let ns = bed.namespace(prefix);
    let rel = format!("{prefix}-rel");
    let image = format!("{}/{REPO}:{TAG}", bed.reg_plain);
    bed.apply(&airflow_release_yaml(&ns, &rel, &image, "StatefulSet"));
    (ns, rel)
}

/// What `show` needs, read-only, in one namespace: a Role bound to `subject` (a YAML subject).
fn grant_show(bed: &Bed, ns: &str, name: &str, subject: &str) {
    bed.apply(&format!(
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: {name}, namespace: {ns}}}
rules:
  - apiGroups: [""]
    resources: [pods, configmaps]
    verbs: [list]
  - apiGroups: [apps]
    resources: [deployments, statefulsets]
    verbs: [list]
  - apiGroups: [batch]
    resources: [cronjobs]
    verbs: [list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {name}, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {name}}}
subjects:
  - {subject}
"#
    ));
}

/// The rows `show -o json` printed for `rel`, as (workload, container).
fn shown(out: &Out, rel: &str) -> Vec<(String, String)> {
    out.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["release"] == rel)
        .map(|i| {
            (
                i["workload"].as_str().unwrap_or("").to_string(),
                i["container"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The five Runtime containers of `airflow_release_yaml`, as `show` lists them.
fn all_rows(rel: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = [
        (format!("deployment/{rel}-webserver"), "webserver"),
        (
            format!("statefulset/{rel}-scheduler"),
            "wait-for-airflow-migrations",
        ),
        (format!("statefulset/{rel}-scheduler"), "scheduler"),
        (
            format!("statefulset/{rel}-scheduler"),
            "scheduler-log-groomer",
        ),
        (format!("configmap/{rel}-config"), "base"),
    ]
    .into_iter()
    .map(|(w, c)| (w, c.to_string()))
    .collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<(String, String)>) -> Vec<(String, String)> {
    v.sort();
    v
}

/// The bed's admin token, read from its kubeconfig (never printed by the tests).
fn admin_token(bed: &Bed) -> String {
    let o = bed.kubectl(&[
        "config",
        "view",
        "--raw",
        "-o",
        "jsonpath={.users[?(@.name==\"admin\")].user.token}",
    ]);
    assert!(o.ok() && !o.stdout.is_empty(), "admin token: {}", o.stderr);
    o.stdout.trim().to_string()
}

/// Runs the plugin with no kubeconfig anywhere: `KUBECONFIG` unset, `HOME` an empty directory
/// (no `~/.kube/config`), no in-cluster environment (and an empty service-account directory, so
/// a real one on the machine cannot interfere).
fn run_without_kubeconfig(bed: &Bed, home: &Path, args: &[&str]) -> Out {
    bed.run_with(args, |c| {
        c.env_remove("KUBECONFIG")
            .env("HOME", home)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .env(
                "ASTRO_SHA_SERVICEACCOUNT_DIR",
                home.join("no-serviceaccount"),
            );
    })
}

// ------------------------------------------------------------------------------------------------
// -v=N
// ------------------------------------------------------------------------------------------------

/// Log lines on stderr at each level (tracing's fmt layer, no colour: `<time>  LEVEL message`).
fn levels(stderr: &str) -> (bool, bool, bool) {
    let has = |l: &str| {
        stderr
            .lines()
            .any(|x| x.split_whitespace().nth(1) == Some(l))
    };
    (has("INFO"), has("DEBUG"), has("TRACE"))
}

#[test]
fn verbosity_is_spelled_as_kubectl_spells_it() {
    let Some(bed) = Bed::get() else {
        return;
    };
    let image = format!("{}/{REPO}:{TAG}", bed.reg_plain);
    let resolve = |v: &[&str]| {
        let mut args = v.to_vec();
        args.extend(["resolve", image.as_str()]);
        let o = bed.run(&args);
        o.assert_code(0);
        levels(&o.stderr)
    };
    // kubectl: 9 everything (trace); 6 every request (debug, no trace); 4-5 debug; 0 nothing.
    for v in [&["-v=9"][..], &["--v=9"], &["-vvvvv"]] {
        let (_, debug, trace) = resolve(v);
        assert!(trace && debug, "{v:?}: trace logs expected");
    }
    for v in [
        &["-v=6"][..],
        &["--v=6"],
        &["--v", "6"],
        &["-v", "6"],
        &["-v6"],
        &["-vvv"],
    ] {
        let (_, debug, trace) = resolve(v);
        assert!(debug && !trace, "{v:?}: debug without trace expected");
    }
    for v in [&["-v=4"][..], &["--v=5"], &["-vv"]] {
        let (_, debug, trace) = resolve(v);
        assert!(debug && !trace, "{v:?}: debug without trace expected");
    }
    for v in [&["-v=0"][..], &[]] {
        assert_eq!(resolve(v), (false, false, false), "{v:?}: no logs");
    }
    // The plugin's own -v / -vv and --verbose keep working after the subcommand too.
    let o = bed.run(&["resolve", image.as_str(), "-v=4"]);
    o.assert_code(0);
    assert!(
        levels(&o.stderr).1,
        "-v=4 after the subcommand: {}",
        o.stderr
    );
    let o = bed.run(&["resolve", image.as_str(), "--verbose", "--verbose"]);
    o.assert_code(0);
    assert!(levels(&o.stderr).1, "--verbose --verbose: {}", o.stderr);
    // Not a number: a usage error that names the flag, exit 2.
    for bad in [&["--v=lots"][..], &["-v=x"]] {
        let mut args = bad.to_vec();
        args.extend(["resolve", image.as_str()]);
        let o = bed.run(&args);
        o.assert_code(2);
        assert!(o.stderr.contains("--v"), "{bad:?}: {}", o.stderr);
    }
}

/// kubectl's -v=6 (client-go's round_trippers): one line per API request on stderr, `GET
/// https://…/apis/apps/v1/deployments?… 200 OK in 5 milliseconds`; the HTTP and TLS libraries'
/// own traces (hyper's "connecting to …") only at 9; and at 9, where everything is traced, no
/// credential of the bed: not the API server's bearer token, not the registry password (nor its
/// base64 `auth`), not a registry bearer token (a JWT, `eyJ…`), no Authorization header (issue 23).
#[test]
fn v6_is_one_line_per_api_request_and_no_level_prints_a_credential() {
    let Some(bed) = Bed::get() else {
        return;
    };
    let api = format!("https://{}", bed.api);
    let o = bed.run(&["show", "-A", "-v=6"]);
    assert!(o.code == 0 || o.code == 1, "{}", o.stderr);
    let requests: Vec<&str> = o
        .stderr
        .lines()
        .filter_map(|l| l.split_once(" INFO ").map(|(_, m)| m))
        .filter(|m| m.starts_with("GET ") && m.ends_with(" milliseconds"))
        .collect();
    let lists = |path: &str| {
        requests
            .iter()
            .filter(|m| {
                m.starts_with(&format!("GET {api}{path}?"))
                    && m.contains("labelSelector=tier%3Dairflow")
                    && m.split(" 200 OK in ")
                        .nth(1)
                        .and_then(|t| t.strip_suffix(" milliseconds"))
                        .is_some_and(|ms| ms.parse::<u64>().is_ok())
            })
            .count()
    };
    // show -A lists each kind once (one page each on the bed): one line per request
    for path in [
        "/apis/apps/v1/deployments",
        "/apis/apps/v1/statefulsets",
        "/api/v1/pods",
        "/api/v1/configmaps",
    ] {
        assert_eq!(lists(path), 1, "{path}:\n{}", o.stderr);
    }
    assert!(
        !o.stderr.contains("connecting to"),
        "HTTP library traces at -v=6:\n{}",
        o.stderr
    );
    // below 6, no request lines
    let o = bed.run(&["show", "-A", "-v=5"]);
    assert!(!o.stderr.contains(" 200 OK in "), "{}", o.stderr);

    // -v=9: the libraries' traces, and no credential: the API server's token, the basic-auth
    // registry's password, the bearer token the token server hands out for anonymous pulls
    // (credentials are never sent to its plain-HTTP token service)
    let dir = tempfile::tempdir().unwrap();
    use base64::Engine;
    let password = "testpassword";
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("testuser:{password}"));
    support::write_file(
        dir.path(),
        "config.json",
        &format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, bed.reg_basic),
    );
    let token = admin_token(&bed);
    let show = bed.run(&["show", "-A", "-v=9"]);
    let resolve = bed.run_with(
        &[
            "resolve",
            "-v=9",
            &format!("{}/{REPO}:{TAG}", bed.reg_basic),
            &format!("{}/{REPO}:{TAG}", bed.reg_token),
        ],
        |c| {
            c.env("DOCKER_CONFIG", dir.path());
        },
    );
    resolve.assert_code(0);
    assert!(
        show.stderr.contains("connecting to") && resolve.stderr.contains("connecting to"),
        "no HTTP library traces at -v=9:\n{}",
        show.stderr
    );
    for out in [&show, &resolve] {
        for text in [&out.stdout, &out.stderr] {
            for secret in [token.as_str(), password, auth.as_str(), "eyJ"] {
                assert!(!text.contains(secret), "a credential is printed at -v=9");
            }
            assert!(
                !text.to_ascii_lowercase().contains("authorization:"),
                "an Authorization header is printed at -v=9"
            );
        }
    }
}

/// Registry requests get the same -v=6 line, their URL without a query (a token request's
/// scope and account stay out of the log).
#[test]
fn v6_logs_registry_requests_too() {
    let Some(bed) = Bed::get() else {
        return;
    };
    let image = format!("{}/{REPO}:{TAG}", bed.reg_token);
    let o = bed.run(&["resolve", &image, "-v=6"]);
    o.assert_code(0);
    let logged = |prefix: &str| {
        o.stderr.lines().any(|l| {
            l.split_once(" INFO ").is_some_and(|(_, m)| {
                m.starts_with(prefix) && m.contains(" 200 OK in ") && m.ends_with(" milliseconds")
            })
        })
    };
    assert!(
        logged(&format!(
            "GET http://{}/v2/{REPO}/manifests/{TAG} ",
            bed.reg_token
        )),
        "{}",
        o.stderr
    );
    assert!(logged("GET http://127.0.0.1:"), "{}", o.stderr);
    assert!(
        o.stderr.lines().any(|l| l.contains("/token 200 OK in ")),
        "the token request: {}",
        o.stderr
    );
    assert!(!o.stderr.contains("scope="), "{}", o.stderr);
}

// ------------------------------------------------------------------------------------------------
// --as, --as-group
// ------------------------------------------------------------------------------------------------

#[test]
fn as_and_as_group_act_as_another_user_with_its_rights() {
    let Some(bed) = Bed::get() else {
        return;
    };
    let (ns, rel) = release(&bed, "kfas");
    // limited6 is one of the bed's RBAC-limited users (token file); here it may only read.
    grant_show(
        &bed,
        &ns,
        "kf-user",
        "{kind: User, name: limited6, apiGroup: rbac.authorization.k8s.io}",
    );
    grant_show(
        &bed,
        &ns,
        "kf-group",
        "{kind: Group, name: astro-sha-kf-viewers, apiGroup: rbac.authorization.k8s.io}",
    );
    let show = |extra: &[&str]| {
        let mut a = vec!["show", rel.as_str(), "-n", &ns, "-o", "json"];
        a.extend_from_slice(extra);
        bed.run(&a)
    };

    // As limited6: the same rows the admin sees (its Role lets it list), and the same as limited6's
    // own credentials give.
    let admin = show(&[]);
    admin.assert_code(0);
    assert_eq!(sorted(shown(&admin, &rel)), all_rows(&rel));
    let as_limited = show(&["--as", "limited6"]);
    as_limited.assert_code(0);
    assert_eq!(sorted(shown(&as_limited, &rel)), all_rows(&rel));
    let own = show(&["--context", "testbed-limited6"]);
    own.assert_code(0);
    assert_eq!(shown(&own, &rel), shown(&as_limited, &rel));

    // As a user with no binding: refused, and the API server names the impersonated user; the
    // admin running the command could have listed (so the request really was made as that user).
    let nobody = show(&["--as", "astro-sha-kf-nobody"]);
    nobody.assert_code(2);
    assert!(
        nobody.stderr.contains("forbidden")
            && nobody.stderr.contains("User \"astro-sha-kf-nobody\""),
        "{}",
        nobody.stderr
    );
    // limited6 may not patch: pin as limited6 is refused and changes nothing.
    let pin = bed.run(&["pin", &rel, "-n", &ns, "--yes", "--as", "limited6"]);
    pin.assert_code(2);
    assert!(pin.stderr.contains("forbidden"), "{}", pin.stderr);
    let images = bed.get_json(&["deployment", &format!("{rel}-webserver"), "-n", &ns]);
    assert!(
        images["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .is_some_and(|i| !i.contains('@')),
        "unpinned"
    );

    // --as-group is repeatable; the group's Role is what lets the otherwise unbound user read.
    let grouped = show(&[
        "--as",
        "astro-sha-kf-nobody",
        "--as-group",
        "astro-sha-kf-others",
        "--as-group",
        "astro-sha-kf-viewers",
    ]);
    grouped.assert_code(0);
    assert_eq!(sorted(shown(&grouped, &rel)), all_rows(&rel));
    let wrong_group = show(&[
        "--as",
        "astro-sha-kf-nobody",
        "--as-group",
        "astro-sha-kf-others",
    ]);
    wrong_group.assert_code(2);

    // A user without the right to impersonate: refused by the API server, and the error says
    // that it is the impersonation that was refused.
    let o = show(&[
        "--context",
        "testbed-limited6",
        "--as",
        "astro-sha-kf-nobody",
    ]);
    o.assert_code(2);
    assert!(
        o.stderr.contains("cannot impersonate") && o.stderr.contains("--as"),
        "{}",
        o.stderr
    );

    // A group without a user is a usage error (the API server would refuse it too), nothing sent.
    let o = show(&["--as-group", "astro-sha-kf-viewers"]);
    o.assert_code(2);
    assert!(o.stderr.contains("--as"), "{}", o.stderr);
}

// ------------------------------------------------------------------------------------------------
// --token, --server, --certificate-authority, --insecure-skip-tls-verify
// ------------------------------------------------------------------------------------------------

#[test]
fn token_server_and_certificate_authority_work_without_a_kubeconfig() {
    let Some(bed) = Bed::get() else {
        return;
    };
    let (ns, rel) = release(&bed, "kftok");
    let home = tempfile::tempdir().expect("tempdir");
    let server = format!("https://{}", bed.api);
    let token = admin_token(&bed);
    let ca = bed.ca.to_str().expect("utf-8 path").to_string();
    let show = |extra: &[&str]| {
        let mut a = vec!["show", rel.as_str(), "-n", &ns, "-o", "json"];
        a.extend_from_slice(extra);
        run_without_kubeconfig(&bed, home.path(), &a)
    };

    let o = show(&[
        "--server",
        &server,
        "--token",
        &token,
        "--certificate-authority",
        &ca,
    ]);
    o.assert_code(0);
    assert_eq!(sorted(shown(&o, &rel)), all_rows(&rel));
    assert!(!o.stderr.contains(&token), "the token is never printed");

    // TLS is verified: without the CA the bed's certificate is refused, and the error says so.
    let o = show(&["--server", &server, "--token", &token]);
    o.assert_code(2);
    assert!(
        o.stderr.contains(&server) && o.stderr.to_lowercase().contains("certificate"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains(&token), "the token is never printed");
    // ... unless the user says otherwise.
    let o = show(&[
        "--server",
        &server,
        "--token",
        &token,
        "--insecure-skip-tls-verify",
    ]);
    o.assert_code(0);
    assert_eq!(sorted(shown(&o, &rel)), all_rows(&rel));
    // Both at once is refused, as kubectl refuses it.
    let o = show(&[
        "--server",
        &server,
        "--token",
        &token,
        "--certificate-authority",
        &ca,
        "--insecure-skip-tls-verify",
    ]);
    o.assert_code(2);
    assert!(
        o.stderr.contains("--certificate-authority")
            && o.stderr.contains("--insecure-skip-tls-verify"),
        "{}",
        o.stderr
    );
    // A CA file that cannot be read: named, with the flag, before anything is sent.
    let o = show(&[
        "--server",
        &server,
        "--token",
        &token,
        "--certificate-authority",
        "/nonexistent/ca.pem",
    ]);
    o.assert_code(2);
    assert!(
        o.stderr.contains("/nonexistent/ca.pem") && o.stderr.contains("--certificate-authority"),
        "{}",
        o.stderr
    );
    // Without a server and without a kubeconfig: what is missing, and what to do.
    let o = show(&["--token", &token]);
    o.assert_code(2);
    assert!(
        o.stderr.contains("kubeconfig") && o.stderr.contains("--server"),
        "{}",
        o.stderr
    );
    // Nothing at all: the same kind of error.
    let o = show(&[]);
    o.assert_code(2);
    assert!(o.stderr.contains("kubeconfig"), "{}", o.stderr);
}

#[test]
fn token_server_and_certificate_authority_override_the_kubeconfig() {
    let Some(bed) = Bed::get() else {
        return;
    };
    let (ns, rel) = release(&bed, "kfovr");
    let show = |extra: &[&str]| {
        let mut a = vec!["show", rel.as_str(), "-n", &ns, "-o", "json"];
        a.extend_from_slice(extra);
        bed.run(&a)
    };
    // The kubeconfig's user is the admin; --token makes the request as the token's user.
    let o = show(&["--token", "astro-sha-testbed-norights-token"]);
    o.assert_code(2);
    assert!(o.stderr.contains("User \"norights\""), "{}", o.stderr);
    assert!(
        !o.stderr.contains("astro-sha-testbed-norights-token"),
        "the token is never printed"
    );
    // --server replaces the context's server (nothing listens on port 9 here).
    let o = show(&["--server", "https://127.0.0.1:9"]);
    o.assert_code(2);
    assert!(o.stderr.contains("https://127.0.0.1:9"), "{}", o.stderr);
    // --certificate-authority replaces the kubeconfig's CA data: a CA that did not sign the bed's
    // certificate makes the same server fail verification.
    let other_ca = bed.path("pki/token-signer.pem");
    let o = show(&["--certificate-authority", other_ca.to_str().expect("utf-8")]);
    o.assert_code(2);
    assert!(
        o.stderr.to_lowercase().contains("certificate"),
        "{}",
        o.stderr
    );
    // --insecure-skip-tls-verify drops the kubeconfig's CA (no "both set" error) and connects.
    let o = show(&["--insecure-skip-tls-verify"]);
    o.assert_code(0);
    assert_eq!(sorted(shown(&o, &rel)), all_rows(&rel));
}

// ------------------------------------------------------------------------------------------------
// in-cluster service account
// ------------------------------------------------------------------------------------------------

/// A service-account directory as the kubelet mounts it, for ServiceAccount `sa` of `ns`: a
/// token from the TokenRequest API (the bed's API server signs it), the bed's CA, the namespace.
fn serviceaccount_dir(bed: &Bed, ns: &str, sa: &str, into: &Path) -> PathBuf {
    bed.apply(&format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {sa}, namespace: {ns}}}\n"
    ));
    let o = bed.kubectl(&["-n", ns, "create", "token", sa, "--duration", "10m"]);
    assert!(o.ok(), "TokenRequest: {}", o.stderr);
    let dir = into.join("serviceaccount");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("token"), o.stdout.trim()).expect("token");
    std::fs::copy(&bed.ca, dir.join("ca.crt")).expect("ca.crt");
    std::fs::write(dir.join("namespace"), ns).expect("namespace");
    dir
}

#[test]
fn in_a_pod_without_a_kubeconfig_the_service_account_is_used() {
    let Some(bed) = Bed::get() else {
        return;
    };
    let (ns, rel) = release(&bed, "kfsa");
    let other = bed.namespace("kfsa-other");
    grant_show(
        &bed,
        &ns,
        "kf-sa",
        &format!("{{kind: ServiceAccount, name: astro-sha, namespace: {ns}}}"),
    );
    let home = tempfile::tempdir().expect("tempdir");
    let sa_dir = serviceaccount_dir(&bed, &ns, "astro-sha", home.path());
    let port = bed.api.rsplit(':').next().expect("port").to_string();
    let in_pod = |args: &[&str], kubeconfig: Option<&str>| {
        bed.run_with(args, |c| {
            c.env_remove("KUBECONFIG")
                .env("HOME", home.path())
                .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
                .env("KUBERNETES_SERVICE_PORT", &port)
                .env("ASTRO_SHA_SERVICEACCOUNT_DIR", &sa_dir);
            if let Some(k) = kubeconfig {
                c.env("KUBECONFIG", k);
            }
        })
    };

    // No -n: the namespace comes from the service account's namespace file.
    let o = in_pod(&["show", "-o", "json"], None);
    o.assert_code(0);
    assert_eq!(sorted(shown(&o, &rel)), all_rows(&rel));
    // The identity is the service account: elsewhere it is refused, by name.
    let o = in_pod(&["show", "-n", &other, "-o", "json"], None);
    o.assert_code(2);
    assert!(
        o.stderr
            .contains(&format!("User \"system:serviceaccount:{ns}:astro-sha\"")),
        "{}",
        o.stderr
    );
    // $KUBECONFIG naming files that do not exist is no kubeconfig (kubectl skips missing files).
    let missing = home.path().join("missing-kubeconfig");
    let o = in_pod(&["show", "-o", "json"], missing.to_str());
    o.assert_code(0);
    assert_eq!(sorted(shown(&o, &rel)), all_rows(&rel));
    // A kubeconfig that exists wins over the service account (kubectl's order).
    let o = in_pod(
        &["show", "-n", &other, "-o", "json"],
        bed.kubeconfig.to_str(),
    );
    o.assert_code(0);
    // Flags still override the in-cluster configuration: --token replaces the mounted token.
    let o = in_pod(
        &[
            "show",
            "-o",
            "json",
            "--token",
            "astro-sha-testbed-norights-token",
        ],
        None,
    );
    o.assert_code(2);
    assert!(o.stderr.contains("User \"norights\""), "{}", o.stderr);
    // The service account's files missing: an error that names them, not a silent fallback.
    std::fs::remove_file(sa_dir.join("ca.crt")).expect("rm ca.crt");
    let o = in_pod(&["show", "-o", "json"], None);
    o.assert_code(2);
    assert!(o.stderr.contains("ca.crt"), "{}", o.stderr);
}

/// Deletes what a test created outside its own namespaces (cluster-scoped RBAC, RBAC in the
/// shared platform namespace) when it ends, pass or fail.
struct Cleanup<'a> {
    bed: &'a Bed,
    objects: Vec<(Option<String>, String)>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for (ns, obj) in &self.objects {
            let mut a = vec!["delete", obj.as_str(), "--ignore-not-found", "--wait=false"];
            if let Some(ns) = ns {
                a.extend(["-n", ns.as_str()]);
            }
            let _ = self.bed.kubectl(&a);
        }
    }
}

/// docs/in-cluster/cronjobs.yaml, run as written on the bed: its ServiceAccount and Roles
/// applied (into the test's namespaces; the status Roles into the bed's platform namespace
/// `astronomer`, which the status CronJob reads, under names of this test), its CronJobs
/// validated by the API server, and each CronJob's container args run the way the pod would run
/// them: no kubeconfig, the service account's mounted files, nothing else. Only what the bed
/// needs offline is added (the catalog from a file, the bed's registry; `-o json` to read the
/// result). The import writes into a namespace of the test, never into the shared fixture.
#[test]
fn the_documented_cronjobs_run_on_the_service_account_alone() {
    use serde::Deserialize;
    let Some(bed) = Bed::get() else {
        return;
    };
    let text = std::fs::read_to_string(support::repo_root().join("docs/in-cluster/cronjobs.yaml"))
        .expect("docs/in-cluster/cronjobs.yaml");
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).expect("cronjobs.yaml parses"))
        .filter(|d| !d.is_null())
        .collect();
    let sa_ns = bed.namespace("kfcron");
    let import_ns = bed.namespace("kfcron-platform");
    let mut cleanup = Cleanup {
        bed: &bed,
        objects: vec![],
    };
    let suffix = sa_ns.name.clone();
    let rename = |name: &str| {
        if name.starts_with("astro-sha-status") {
            format!("{name}-{suffix}")
        } else {
            name.to_string()
        }
    };
    let mut objects = vec![];
    let mut cronjobs = vec![];
    for mut d in docs {
        let kind = d["kind"].as_str().unwrap_or("").to_string();
        let name = d["metadata"]["name"].as_str().unwrap_or("").to_string();
        assert_ne!(kind, "ConfigMap", "no kubeconfig ConfigMap: {d}");
        match (kind.as_str(), d["metadata"]["namespace"].as_str()) {
            ("Namespace", _) => continue, // the test's own namespace stands in for astro-sha
            (_, Some("astro-sha")) => d["metadata"]["namespace"] = json!(sa_ns.name),
            (_, Some("astronomer")) if name.starts_with("astro-sha-import") => {
                d["metadata"]["namespace"] = json!(import_ns.name)
            }
            (_, Some("astronomer")) => {
                d["metadata"]["name"] = json!(rename(&name));
                cleanup.objects.push((
                    Some("astronomer".into()),
                    format!("{}/{}", kind.to_lowercase(), rename(&name)),
                ));
            }
            (_, None) => {
                d["metadata"]["name"] = json!(rename(&name));
                cleanup
                    .objects
                    .push((None, format!("{}/{}", kind.to_lowercase(), rename(&name))));
            }
            (_, Some(other)) => panic!("{kind}/{name} in an unexpected namespace {other}"),
        }
        if let Some(r) = d["roleRef"]["name"].as_str().map(&rename) {
            d["roleRef"]["name"] = json!(r);
        }
        if let Some(subjects) = d["subjects"].as_array_mut() {
            for s in subjects {
                assert_eq!(s["namespace"], "astro-sha", "{s}");
                s["namespace"] = json!(sa_ns.name);
            }
        }
        if kind == "CronJob" {
            cronjobs.push(d);
        } else {
            objects.push(d);
        }
    }
    assert_eq!(cronjobs.len(), 2, "an import and a status CronJob");
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    bed.apply(&list.to_string());
    // The CronJobs as the API server sees them (1.20 serves CronJob only as batch/v1beta1).
    for c in &cronjobs {
        let mut c = c.clone();
        c["apiVersion"] = json!("batch/v1beta1");
        let o = bed.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &c.to_string());
        assert!(
            o.ok(),
            "server dry run of {}: {}",
            c["metadata"]["name"],
            o.stderr
        );
    }

    let home = tempfile::tempdir().expect("tempdir");
    let sa_dir = serviceaccount_dir(&bed, &sa_ns, "astro-sha", home.path());
    let catalog = tiny_catalog(home.path());
    let repo = format!("{}/{REPO}", bed.reg_plain);
    let port = bed.api.rsplit(':').next().expect("port").to_string();
    for c in &cronjobs {
        let pod = &c["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], "astro-sha");
        let container = &pod["containers"][0];
        let env: Vec<&str> = container["env"]
            .as_array()
            .map(|e| e.iter().filter_map(|v| v["name"].as_str()).collect())
            .unwrap_or_default();
        assert!(!env.contains(&"KUBECONFIG"), "{env:?}");
        let mut args: Vec<String> = container["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| a.as_str().expect("string arg").to_string())
            .collect();
        let import = args[0] == "import";
        if import {
            let i = args
                .iter()
                .position(|a| a == "--platform-namespace")
                .expect("--platform-namespace");
            args[i + 1] = import_ns.name.clone();
            args.extend([
                "--source".to_string(),
                catalog.to_string_lossy().into_owned(),
                "--airflow2-repository".into(),
                repo.clone(),
            ]);
        } else {
            args.extend(["-o".to_string(), "json".into()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = || {
            bed.run_with(&args, |cmd| {
                cmd.env_remove("KUBECONFIG")
                    .env("HOME", home.path())
                    .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
                    .env("KUBERNETES_SERVICE_PORT", &port)
                    .env("ASTRO_SHA_SERVICEACCOUNT_DIR", &sa_dir);
            })
        };
        if import {
            run().assert_code(0);
            let m = managers(&bed, &import_ns, "configmap/astro-runtime-base-images");
            assert_eq!(m, vec![FIELD_MANAGER.to_string()]);
            // the next night: the same ConfigMap, read and replaced with get/update rights only
            run().assert_code(0);
        } else {
            let o = run();
            assert!(o.code == 0 || o.code == 1, "status --check: {}", o.stderr);
            let report = o.json();
            assert_eq!(
                report["couldNotRead"],
                json!([]),
                "the documented Roles are enough for status"
            );
            assert_eq!(report["platform"]["namespace"], "astronomer");
        }
    }
}

// ------------------------------------------------------------------------------------------------
// field manager and User-Agent
// ------------------------------------------------------------------------------------------------

/// The managers recorded in an object's managedFields.
fn managers(bed: &Bed, ns: &str, obj: &str) -> Vec<String> {
    let v = bed.get_json(&[obj, "-n", ns, "--show-managed-fields"]);
    v["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["manager"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn sorted_names(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The fields `manager` owns on an object (its managedFields entries' fieldsV1, as JSON text).
fn owned_by(bed: &Bed, ns: &str, obj: &str, manager: &str) -> String {
    let v = bed.get_json(&[obj, "-n", ns, "--show-managed-fields"]);
    v["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["manager"] == manager)
        .map(|m| m["fieldsV1"].to_string())
        .collect()
}

/// A one-entry catalog whose Airflow 2 tag the bed has seeded.
fn tiny_catalog(dir: &Path) -> PathBuf {
    support::write_file(
        dir,
        "catalog.json",
        &format!(
            r#"{{"version": "1.0", "runtimeVersions": {{"{TAG}": {{"metadata": {{"airflowVersion": "2.10.0", "channel": "stable", "yanked": false}}, "migrations": {{"airflowDatabase": false}}}}}}}}"#
        ),
    )
}

#[test]
fn managed_fields_name_the_plugin_after_pin_unpin_and_import() {
    let Some(bed) = Bed::get() else {
        return;
    };
    let (ns, rel) = release(&bed, "kffm");
    let objects = [
        format!("deployment/{rel}-webserver"),
        format!("statefulset/{rel}-scheduler"),
        format!("configmap/{rel}-config"),
    ];
    bed.run(&["pin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    let mut after_pin = vec![];
    for o in &objects {
        let m = managers(&bed, &ns, o);
        assert!(m.iter().any(|x| x == FIELD_MANAGER), "{o} after pin: {m:?}");
        assert!(!m.iter().any(|x| x == "unknown"), "{o} after pin: {m:?}");
        after_pin.push(sorted_names(m));
    }
    bed.run(&["unpin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    // pin's entry persists, so its presence proves nothing about unpin. unpin's writes did go
    // in under the plugin's name: no new manager appeared, and the fields it wrote back (the
    // images, the pod template) are the plugin's; a write under another name takes them over.
    for ((o, field), pinned) in objects
        .iter()
        .zip(["f:image", "f:image", "f:pod_template_file.yaml"])
        .zip(&after_pin)
    {
        let m = sorted_names(managers(&bed, &ns, o));
        assert_eq!(
            &m, pinned,
            "{o}: the same managers after unpin as after pin"
        );
        let fields = owned_by(&bed, &ns, o, FIELD_MANAGER);
        assert!(
            fields.contains(field),
            "{o} after unpin: the plugin owns {field}: {fields}"
        );
    }

    let platform = bed.namespace("kffm-platform");
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = tiny_catalog(dir.path());
    let repo = format!("{}/{REPO}", bed.reg_plain);
    let import = |extra: &[&str]| {
        let mut a = vec![
            "import",
            "--platform-namespace",
            &platform,
            "--source",
            catalog.to_str().expect("utf-8"),
            "--airflow2-repository",
            &repo,
            "--yes",
        ];
        a.extend_from_slice(extra);
        bed.run(&a)
    };
    import(&[]).assert_code(0);
    let m = managers(&bed, &platform, "configmap/astro-runtime-base-images");
    assert_eq!(m, vec![FIELD_MANAGER.to_string()], "after the create");
}

#[test]
fn every_api_request_names_the_plugin_and_every_write_its_field_manager() {
    let Some(bed) = Bed::get() else {
        return;
    };
    let (ns, rel) = release(&bed, "kfua");
    let platform = bed.namespace("kfua-platform");
    let proxy = Proxy::apiserver(&bed.dir, &bed.api, json!([]));
    let kubeconfig = proxy.kubeconfig(&bed.kubeconfig);
    let run = |args: &[&str]| {
        bed.run_with(args, |c| {
            c.env("KUBECONFIG", &kubeconfig);
        })
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = tiny_catalog(dir.path());
    let repo = format!("{}/{REPO}", bed.reg_plain);

    run(&["show", &rel, "-n", &ns]).assert_code(0);
    run(&["pin", &rel, "-n", &ns, "--yes", "--dry-run=server"]).assert_code(0);
    run(&["pin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    run(&["unpin", &rel, "-n", &ns, "--yes"]).assert_code(0);
    let import = |extra: &[&str]| {
        let mut a = vec![
            "import",
            "--platform-namespace",
            &platform,
            "--source",
            catalog.to_str().expect("utf-8"),
            "--airflow2-repository",
            &repo,
            "--yes",
        ];
        a.extend_from_slice(extra);
        run(&a)
    };
    import(&[]).assert_code(0); // creates the ConfigMap
    import(&[]).assert_code(0); // reads it again, and replaces it if anything is to change

    let requests = proxy.requests();
    assert!(requests.len() >= 10, "{requests:#?}");
    for r in &requests {
        assert_eq!(r["user_agent"], USER_AGENT, "User-Agent of {r}");
    }
    let writes: Vec<&Value> = requests
        .iter()
        .filter(|r| {
            matches!(r["method"].as_str(), Some("POST" | "PUT" | "PATCH" | "DELETE"))
                // a SelfSubjectAccessReview is a question, not a write to an object
                && !r["path"]
                    .as_str()
                    .is_some_and(|p| p.contains("selfsubjectaccessreviews"))
        })
        .collect();
    let patches = writes.iter().filter(|r| r["method"] == "PATCH").count();
    assert!(
        patches >= 9,
        "pin (server dry run), pin and unpin patch 3 objects each: {writes:#?}"
    );
    assert!(
        writes.iter().any(|r| r["method"] == "POST"
            && r["path"]
                .as_str()
                .is_some_and(|p| p.contains("/configmaps"))),
        "import creates the ConfigMap: {writes:#?}"
    );
    for w in &writes {
        let path = w["path"].as_str().unwrap_or("");
        assert!(
            path.contains(&format!("fieldManager={FIELD_MANAGER}")),
            "write without the plugin's field manager: {w}"
        );
    }
}

#[test]
fn registry_requests_carry_the_user_agent() {
    let Some(bed) = Bed::get() else {
        return;
    };
    let ns = bed.namespace("kfreg");
    let repo = format!("{ns}/kf-ua");
    // A repository no other test touches, on the plain and on the token registry (one storage).
    let digest = bed.push(
        &format!("{}/{repo}:1", bed.reg_plain),
        "oci-manifest",
        "kf-ua",
    );
    for (flavour, host) in [("plain", &bed.reg_plain), ("token", &bed.reg_token)] {
        // only what this resolve asked for: the push before it used its own client
        let mark = bed.registry_log(flavour).lines().count();
        let o = bed.run(&["resolve", &format!("{host}/{repo}:1"), "-o", "json"]);
        o.assert_code(0);
        assert!(o.stdout.contains(&digest), "{}", o.stdout);
        let ours = || -> Vec<Value> {
            bed.registry_log(flavour)
                .lines()
                .skip(mark)
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|l| {
                    l["http.request.uri"]
                        .as_str()
                        .is_some_and(|u| u.starts_with(&format!("/v2/{repo}/manifests/")))
                })
                .collect()
        };
        // the registry writes its line as it finishes the response: give it a moment
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while ours().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let ours = ours();
        assert!(!ours.is_empty(), "{flavour}: no manifest request logged");
        for l in &ours {
            assert_eq!(
                l["http.request.useragent"], USER_AGENT,
                "{flavour} registry saw: {l}"
            );
        }
    }
}
