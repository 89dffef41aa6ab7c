//! A hostile registry (`scripts/testbed-lib/hostile_registry.py`, started per test on free
//! loopback ports) and the credentials rules: digests that are not sha256, escape sequences,
//! endless bodies, token realms and redirects that would carry a credential where it does not
//! belong; plus credentials from podman/skopeo's auth.json and docker credential helpers.
//!
//! Every test runs the real binary. The hostile server needs only python3 (and
//! python3-cryptography for TLS), but the tests take the bed's CA and basic-auth registry, so
//! they run under the same rule as the rest: skipped without the bed, failing under CI=true.

use std::process::{Command, Stdio};

use crate::support::hostile::{assert_cut_by_the_client, Hostile};
use crate::support::{Bed, Out};

/// No escape sequence, bell or other control character (newlines and tabs aside) in the output.
#[track_caller]
fn assert_no_controls(o: &Out) {
    for (name, text) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
        let bad: Vec<char> = text
            .chars()
            .filter(|c| c.is_control() && *c != '\n' && *c != '\t')
            .collect();
        assert!(
            bad.is_empty(),
            "control characters {bad:?} in {name}:\n{text:?}"
        );
    }
}

/// A docker config dir holding a Basic credential for `host`.
fn docker_config_for(host: &str, user: &str, password: &str) -> tempfile::TempDir {
    use base64::Engine;
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    std::fs::write(
        dir.path().join("config.json"),
        format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#),
    )
    .expect("write config.json");
    dir
}

// ---- Digests from the registry ----

/// The OCI image spec allows other algorithms (sha512), but nothing in a Kubernetes pin chain
/// here can verify one; a value that is not a digest at all must never be printed as one.
#[test]
fn digest_headers_that_are_not_sha256_are_refused_naming_the_source() {
    let Some(bed) = Bed::get() else { return };
    let sha512 = format!("sha512:{}", "ab".repeat(64));
    for (value, expect) in [
        (sha512.as_str(), "only sha256 digests are accepted"),
        ("not-a-digest", "not a digest"),
        (
            "sha256:ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789",
            "lower-case hex",
        ),
    ] {
        let h = Hostile::start(&bed, "digest-header", "none", "none", &["--digest", value]);
        let o = bed.run_with(
            &["resolve", &h.image(), "--insecure-registry", &h.host()],
            |_| {},
        );
        o.assert_code(1);
        assert!(o.stderr.contains(expect), "{value}: {}", o.stderr);
        assert!(
            o.stderr.contains("Docker-Content-Digest header")
                && o.stderr
                    .contains(&format!("{}/astronomer/astro-runtime:12.1.0", h.host())),
            "names registry, repository, tag and the header: {}",
            o.stderr
        );
        // Issue 19: the reference is said once, not `ref: ref: Docker-Content-Digest header`.
        assert_eq!(
            o.stderr
                .matches(&format!("{}/astronomer/astro-runtime:12.1.0", h.host()))
                .count(),
            1,
            "{}",
            o.stderr
        );
        assert!(
            !o.stdout.contains(value),
            "printed as a digest: {}",
            o.stdout
        );
    }
}

/// A digest the user asks for is held to the same rule, before any request is made.
#[test]
fn a_requested_sha512_digest_is_refused_before_asking_the_registry() {
    let Some(bed) = Bed::get() else { return };
    let h = Hostile::start(
        &bed,
        "digest-header",
        "none",
        "none",
        &["--digest", "unused"],
    );
    let image = format!(
        "{}/astronomer/astro-runtime@sha512:{}",
        h.host(),
        "ab".repeat(64)
    );
    let o = bed.run(&["resolve", "--insecure-registry", &h.host(), &image]);
    o.assert_code(1);
    assert!(
        o.stderr.contains("requested digest") && o.stderr.contains("only sha256"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("repository@sha256:"),
        "hint: {}",
        o.stderr
    );
    assert!(
        h.requests().is_empty(),
        "asked the registry: {:?}",
        h.requests()
    );
}

/// issue 11: an index entry `sha256:not-a-digest<ESC>[2J` was accepted with `--platform` and
/// printed, escape sequence and all.
#[test]
fn an_index_entry_that_is_not_a_digest_is_refused_and_never_printed() {
    let Some(bed) = Bed::get() else { return };
    let h = Hostile::start(&bed, "index-entry", "none", "none", &[]);
    for extra in [&["--platform", "linux/amd64"][..], &["-o", "json"][..]] {
        let mut args = vec!["resolve", "--insecure-registry"];
        let host = h.host();
        let image = h.image();
        args.push(&host);
        args.push(&image);
        args.extend_from_slice(extra);
        let o = bed.run(&args);
        o.assert_code(1);
        assert!(
            o.stderr.contains("index entry 0 (linux/amd64)")
                && o.stderr.contains("not a sha256 digest"),
            "{}",
            o.stderr
        );
        assert_no_controls(&o);
        // Refused, not listed: no digest or platform of that index reaches the output.
        for field in ["\"digest\"", "platformDigest", "platforms"] {
            assert!(!o.stdout.contains(field), "{field} in {}", o.stdout);
        }
    }
}

#[test]
fn a_media_type_with_an_escape_sequence_is_refused_not_printed() {
    let Some(bed) = Bed::get() else { return };
    let h = Hostile::start(&bed, "media-type", "none", "none", &[]);
    let o = bed.run(&["resolve", "--insecure-registry", &h.host(), &h.image()]);
    o.assert_code(1);
    assert!(o.stderr.contains("is not a media type"), "{}", o.stderr);
    assert_no_controls(&o);
}

/// The registry's error text is shown (it often says why: a policy, a quota), without the
/// escape sequences, bell or C1 controls it carried.
#[test]
fn an_error_body_is_shown_without_its_control_characters() {
    let Some(bed) = Bed::get() else { return };
    let h = Hostile::start(&bed, "error-body", "none", "none", &[]);
    let o = bed.run(&["resolve", "--insecure-registry", &h.host(), &h.image()]);
    o.assert_code(1);
    assert!(
        o.stderr.contains(
            "registry answered HTTP 400: BLOCKED[2J: policy says no]0;pwned to this image"
        ),
        "{}",
        o.stderr
    );
    assert_no_controls(&o);
}

// ---- Bounded reads ----

/// Peak RSS of a child, from /usr/bin/time -f %M (KiB), as the benchmarks measure it.
fn run_measured(bed: &Bed, args: &[&str]) -> (Out, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let rss_file = dir.path().join("rss");
    let c = bed.cmd();
    let program = c.get_program().to_owned();
    let envs: Vec<_> = c
        .get_envs()
        .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
        .collect();
    let mut t = Command::new("/usr/bin/time");
    t.arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .arg(program)
        .args(args);
    for (k, v) in envs {
        match v {
            Some(v) => t.env(k, v),
            None => t.env_remove(k),
        };
    }
    t.stdin(Stdio::null());
    let o = Out::from(t.output().expect("run under /usr/bin/time"));
    let kib = std::fs::read_to_string(&rss_file)
        .unwrap_or_default()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("peak RSS from /usr/bin/time");
    (o, kib)
}

/// issue 11: HEAD without a digest, then an endless manifest body made `resolve` run 26 s and
/// reach 6.2 GB of RSS. Manifests are capped at 4 MiB as containerd caps them; the read stops
/// there: the server saw the client close the body after little more than 4 MiB, and the peak
/// RSS stays under 150 MiB (loose on purpose).
#[test]
fn an_endless_manifest_body_is_cut_at_4_mib_with_bounded_memory() {
    let Some(bed) = Bed::get() else { return };
    let h = Hostile::start(&bed, "endless", "none", "none", &[]);
    let (o, kib) = run_measured(
        &bed,
        &["resolve", "--insecure-registry", &h.host(), &h.image()],
    );
    o.assert_code(1);
    assert!(
        o.stderr
            .contains("the manifest is larger than 4 MiB; refusing it"),
        "{}",
        o.stderr
    );
    assert_cut_by_the_client(&h, 4 << 20);
    assert!(kib < 150 * 1024, "peak RSS {kib} KiB");
}

#[test]
fn an_endless_token_response_is_cut_at_its_limit() {
    let Some(bed) = Bed::get() else { return };
    let h = Hostile::start(&bed, "token-endless", "none", "none", &[]);
    let (o, kib) = run_measured(
        &bed,
        &["resolve", "--insecure-registry", &h.host(), &h.image()],
    );
    o.assert_code(1);
    assert!(
        o.stderr.contains("token response is larger than 1024 KiB"),
        "{}",
        o.stderr
    );
    assert_cut_by_the_client(&h, 1 << 20);
    assert!(kib < 150 * 1024, "peak RSS {kib} KiB");
}

/// The registry timeout covers the whole request, body included: a registry that sends its
/// headers at once and then one byte every half second cannot hold a run. (A guard: reqwest's
/// whole-request timeout already did this before the bounded reads.) The server says the client
/// hung up after a few bytes of the manifest, never all of it.
#[test]
fn a_dripping_body_ends_at_the_registry_timeout() {
    let Some(bed) = Bed::get() else { return };
    let h = Hostile::start(&bed, "drip", "none", "none", &[]);
    let o = bed.run(&[
        "resolve",
        "--insecure-registry",
        &h.host(),
        &h.image(),
        "--registry-timeout",
        "2s",
    ]);
    o.assert_code(1);
    assert!(o.stderr.contains("no answer within 2s"), "{}", o.stderr);
    let e = h.stopped("drip stopped");
    assert_eq!(e["closed_by_client"], true, "{e}");
    let (sent, of) = (e["bytes"].as_u64(), e["of"].as_u64());
    assert!(
        sent.zip(of).is_some_and(|(sent, of)| sent < of),
        "part of the body, not all of it: {e}"
    );
}

// ---- Credentials stay where they belong ----

/// issue 11: an HTTPS registry whose realm is plain `http://` on another port received the
/// user's Basic credential in clear text. The token flow (distribution's token spec) sends the
/// credential to the realm; over plain HTTP that is only allowed to a host the user listed.
#[test]
fn a_plain_http_realm_never_receives_the_credential() {
    let Some(bed) = Bed::get() else { return };
    let h = Hostile::start(&bed, "realm-http", "bed", "none", &[]);
    let cfg = docker_config_for(&h.host(), "alice", "s3cret-password");
    let o = bed.run_with(&["resolve", &h.image()], |c| {
        c.env("DOCKER_CONFIG", cfg.path());
    });
    o.assert_code(1);
    assert!(
        o.stderr
            .contains("is plain HTTP; refusing to send the credentials")
            && o.stderr
                .contains(&format!("--insecure-registry {}", h.aux_host())),
        "{}",
        o.stderr
    );
    let leaked: Vec<_> = h
        .aux_requests()
        .into_iter()
        .filter(|r| !r["authorization"].is_null())
        .collect();
    assert!(
        leaked.is_empty(),
        "the realm received a credential: {leaked:?}"
    );
    assert!(!o.stderr.contains("s3cret"));
    // The realm URL is named without its userinfo and query string.
    assert!(
        o.stderr
            .contains(&format!("http://127.0.0.1:{}/token is plain HTTP", h.aux)),
        "{}",
        o.stderr
    );
    for secret in ["REALM-SECRET", "REALM-PASSWORD", "realm-user"] {
        assert!(!o.stderr.contains(secret), "{secret} shown: {}", o.stderr);
    }

    // Anonymous (no credential to leak), the same realm is fine; listed, the credential goes.
    let o = bed.run(&["resolve", &h.image()]);
    o.assert_code(0);
    let o = bed.run_with(
        &["resolve", &h.image(), "--insecure-registry", &h.aux_host()],
        |c| {
            c.env("DOCKER_CONFIG", cfg.path());
        },
    );
    o.assert_code(0);
    assert!(
        h.aux_requests().iter().any(|r| r["user"] == "alice"),
        "listed realm gets the credential: {:?}",
        h.aux_requests()
    );
    // The user's credential only, never the userinfo the registry wrote into its realm URL.
    assert!(!h.aux_requests().iter().any(|r| r["user"] == "realm-user"));
}

/// A realm on another host is verified with THAT host's TLS settings: the registry's
/// `--insecure-registry` does not switch verification off for wherever it points.
#[test]
fn a_cross_host_realm_is_verified_with_its_own_tls_settings() {
    let Some(bed) = Bed::get() else { return };
    let h = Hostile::start(&bed, "realm-tls", "untrusted", "untrusted", &[]);
    let cfg = docker_config_for(&h.host(), "alice", "s3cret-password");
    let o = bed.run_with(
        &["resolve", &h.image(), "--insecure-registry", &h.host()],
        |c| {
            c.env("DOCKER_CONFIG", cfg.path());
        },
    );
    o.assert_code(1);
    assert!(
        o.stderr.contains(&format!("{}: TLS failure", h.aux_host())),
        "names the realm's host: {}",
        o.stderr
    );
    assert!(
        h.aux_requests().is_empty(),
        "the unverified realm was spoken to: {:?}",
        h.aux_requests()
    );
    // Listing the realm host as well is the user's explicit choice.
    let o = bed.run_with(
        &[
            "resolve",
            &h.image(),
            "--insecure-registry",
            &h.host(),
            "--insecure-registry",
            &h.aux_host(),
        ],
        |c| {
            c.env("DOCKER_CONFIG", cfg.path());
        },
    );
    o.assert_code(0);
}

/// A redirect never goes from HTTPS to plain HTTP (the credential was sent over TLS; what
/// follows a downgrade can be read and changed by anyone on the path).
#[test]
fn a_redirect_from_https_to_http_is_refused() {
    let Some(bed) = Bed::get() else { return };
    let h = Hostile::start(&bed, "redirect", "bed", "none", &[]);
    let cfg = docker_config_for(&h.host(), "alice", "s3cret-password");
    let o = bed.run_with(&["resolve", &h.image()], |c| {
        c.env("DOCKER_CONFIG", cfg.path());
    });
    o.assert_code(1);
    assert!(
        o.stderr
            .contains("refusing a redirect from HTTPS to plain HTTP"),
        "{}",
        o.stderr
    );
    assert!(
        h.aux_requests().is_empty(),
        "the plain-HTTP target was contacted: {:?}",
        h.aux_requests()
    );
    // The registry itself did get the credential, over TLS.
    assert!(h
        .requests()
        .iter()
        .any(|r| r["port"] == "registry" && r["user"] == "alice"));
}

/// A redirect to another host keeps no credential: the registry got the Basic credential, the
/// host it redirected to got none. (A guard: reqwest drops `Authorization` across hosts; this
/// proves the custom redirect policy kept that.)
#[test]
fn a_redirect_to_another_host_carries_no_credential() {
    let Some(bed) = Bed::get() else { return };
    let h = Hostile::start(&bed, "redirect", "bed", "bed", &[]);
    let cfg = docker_config_for(&h.host(), "alice", "s3cret-password");
    let o = bed.run_with(&["resolve", &h.image()], |c| {
        c.env("DOCKER_CONFIG", cfg.path());
    });
    o.assert_code(0);
    let aux = h.aux_requests();
    assert!(!aux.is_empty(), "the redirect was not followed");
    assert!(
        aux.iter().all(|r| r["authorization"].is_null()),
        "a credential followed the redirect: {aux:?}"
    );
}

/// docker's `identitytoken` is an OAuth2 refresh token, POSTed to the realm. A 307/308 resends a
/// POST body as it is, so a realm redirecting to another host would receive the refresh token:
/// the refresh-token request follows no redirect.
#[test]
fn a_refresh_token_never_follows_a_redirect() {
    let Some(bed) = Bed::get() else { return };
    let h = Hostile::start(&bed, "refresh-redirect", "bed", "bed", &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"identitytoken":"REFRESH-TOKEN-VALUE"}}}}}}"#,
            h.host()
        ),
    )
    .expect("write config.json");
    let o = bed.run_with(&["resolve", &h.image()], |c| {
        c.env("DOCKER_CONFIG", dir.path());
    });
    o.assert_code(1);
    assert!(
        o.stderr.contains("redirected the refresh-token request"),
        "{}",
        o.stderr
    );
    assert!(
        h.aux_requests().is_empty() && !h.requests().iter().any(|r| r["port"] == "aux"),
        "the other host was contacted: {:?}",
        h.requests()
    );
    assert!(!o.stderr.contains("REFRESH-TOKEN-VALUE"));
}

// ---- Credential helpers ----

/// Writes `docker-credential-NAME` (a shell script) into a fresh PATH dir and a docker config
/// that names it as the credential store.
fn helper_setup(name: &str, script: &str) -> (tempfile::TempDir, String) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join(format!("docker-credential-{name}"));
    std::fs::write(&bin, format!("#!/bin/sh\n{script}\n")).expect("write helper");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(
        dir.path().join("config.json"),
        format!(r#"{{"credsStore":"{name}"}}"#),
    )
    .expect("write config.json");
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (dir, path)
}

/// A helper that never answers is killed after --registry-timeout and the run goes on without
/// credentials (docs/faults.md): the helper's process is gone when the run ends, the warning
/// says so, and the registry then got an anonymous request, which it refused (exit 1: the
/// image is unresolved, not an error of the run).
#[test]
fn a_hanging_credential_helper_is_killed_after_the_timeout() {
    let Some(bed) = Bed::get() else { return };
    let pid_file = tempfile::NamedTempFile::new().expect("pid file");
    // `exec`: the helper's process is the sleep itself, so its pid is the process to find.
    let (dir, path) = helper_setup(
        "hang",
        &format!("echo $$ > '{}'; exec sleep 60", pid_file.path().display()),
    );
    // The basic-auth registry: only a registry that asks for auth makes the helper run.
    let image = format!("{}/{}", bed.reg_basic, "astronomer/astro-runtime:none-such");
    let log_before = bed.registry_log("basic").len();
    let o = bed.run_with(&["resolve", &image, "--registry-timeout", "2s"], |c| {
        c.env("DOCKER_CONFIG", dir.path()).env("PATH", &path);
    });
    o.assert_code(1);
    assert!(
        o.stderr.contains(
            "the credential helper docker-credential-hang did not answer within 2s; killed it, trying without credentials"
        ),
        "{}",
        o.stderr
    );
    let pid = std::fs::read_to_string(pid_file.path()).expect("the helper ran");
    let pid = pid.trim();
    assert!(!pid.is_empty(), "the helper wrote its pid");
    assert!(
        process_gone(pid),
        "the helper (pid {pid}) outlived the run: {}",
        std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default()
    );
    // It went on anonymously: the registry refused a request without credentials.
    assert!(
        o.stderr.contains("unauthorized"),
        "the registry refused the anonymous request: {}",
        o.stderr
    );
    let log = bed.registry_log("basic");
    assert!(
        log[log_before.min(log.len())..].contains("none-such"),
        "the registry was asked for the image after the helper was killed: {log}"
    );
}

/// Whether the process is gone (or a zombie nobody reaps, which runs nothing).
fn process_gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Err(_) => true,
        Ok(status) => status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z')),
    }
}

/// A registry that asks for no auth gets none, so no credential helper runs for it.
#[test]
fn no_credential_helper_runs_for_an_anonymous_registry() {
    let Some(bed) = Bed::get() else { return };
    let marker = tempfile::tempdir().expect("tempdir");
    let ran = marker.path().join("ran");
    let (dir, path) = helper_setup("marker", &format!("touch '{}'; exit 1", ran.display()));
    let (image, _) = seeded_image(&bed, &bed.reg_plain);
    bed.run_with(&["resolve", &image], |c| {
        c.env("DOCKER_CONFIG", dir.path()).env("PATH", &path);
    })
    .assert_code(0);
    assert!(!ran.exists(), "the helper ran for an anonymous registry");
    // The same helper does run for the basic-auth registry (the marker works).
    let (image, _) = seeded_image(&bed, &bed.reg_basic);
    bed.run_with(&["resolve", &image], |c| {
        c.env("DOCKER_CONFIG", dir.path()).env("PATH", &path);
    });
    assert!(ran.exists(), "the helper never ran");
}

/// A helper that fails, printing to stdout and stderr: it ran (its marker is there, and the debug
/// log names it), the run went on without credentials (exit 1, the image unresolved), and none
/// of its output appears, even at -v=9 (every library trace).
#[test]
fn a_credential_helpers_output_is_never_logged() {
    let Some(bed) = Bed::get() else { return };
    let marker = tempfile::tempdir().expect("tempdir");
    let ran = marker.path().join("ran");
    let (dir, path) = helper_setup(
        "leaky",
        &format!(
            "touch '{}'; echo 'HELPER-SECRET-OUT'; echo 'HELPER-SECRET-ERR' >&2; exit 1",
            ran.display()
        ),
    );
    let image = format!("{}/{}", bed.reg_basic, "astronomer/astro-runtime:none-such");
    let o = bed.run_with(&["resolve", &image, "-v=9"], |c| {
        c.env("DOCKER_CONFIG", dir.path()).env("PATH", &path);
    });
    o.assert_code(1);
    assert!(ran.exists(), "the helper never ran: {}", o.stderr);
    assert!(
        o.stderr.contains("docker-credential-leaky") && o.stderr.contains("unauthorized"),
        "the failed helper is logged by name, and the anonymous request refused: {}",
        o.stderr
    );
    assert!(!o.stderr.contains("HELPER-SECRET"), "{}", o.stderr);
    assert!(!o.stdout.contains("HELPER-SECRET"));
}

/// Issue 23: a 401 did not say which credential was tried. A helper that answers a wrong
/// credential: the refusal names the helper (docker-credential-wrong), never what it answered.
#[test]
fn a_refused_credential_names_the_helper_it_came_from() {
    let Some(bed) = Bed::get() else { return };
    let (dir, path) = helper_setup(
        "wrong",
        r#"echo '{"ServerURL":"x","Username":"alice","Secret":"Wr0ng-helper-s3cret"}'"#,
    );
    let (image, _) = seeded_image(&bed, &bed.reg_basic);
    let repo = bed.seed["images"][0]["repository"]
        .as_str()
        .expect("repository");
    let o = bed.run_with(&["resolve", &image], |c| {
        c.env("DOCKER_CONFIG", dir.path()).env("PATH", &path);
    });
    o.assert_code(1);
    assert!(
        o.stderr.contains(&format!(
            "{}: unauthorized to pull {repo} with the configured credentials from the credential helper docker-credential-wrong",
            bed.reg_basic
        )),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("Wr0ng-helper-s3cret") && !o.stdout.contains("Wr0ng-helper-s3cret"));
}

/// Issue 23: a refused pull secret is named by namespace/name (never its content), in `show`'s
/// warning and hint; the workload without one is told it went anonymously.
#[test]
fn a_refused_pull_secret_is_named_by_namespace_and_name() {
    let Some(bed) = Bed::get() else { return };
    use base64::Engine;
    let ns = bed.namespace("badpullsecret");
    let image = format!("{}/astronomer/astro-runtime:12.1.0", bed.reg_basic);
    let mut yaml = crate::support::airflow_release_yaml(&ns, "bps-rel", &image, "Deployment");
    yaml = yaml.replace(
        "    spec:\n      initContainers:",
        "    spec:\n      imagePullSecrets:\n        - name: stale-regcred\n      initContainers:",
    );
    let auth = base64::engine::general_purpose::STANDARD.encode("testuser:St4le-pull-s3cret");
    let cfg = format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, bed.reg_basic);
    let secret = base64::engine::general_purpose::STANDARD.encode(cfg);
    yaml.push_str(&format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: stale-regcred\n  namespace: {ns}\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {secret}\n"
    ));
    bed.apply(&yaml);
    let o = bed.run(&["show", "-n", &ns]);
    o.assert_code(1);
    assert!(
        o.stderr.contains(&format!(
            "unauthorized to pull astronomer/astro-runtime with the configured credentials from the pull secret {ns}/stale-regcred"
        )) && o
            .stderr
            .contains(&format!("kubectl get secret stale-regcred -n {ns}")),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr
            .contains("unauthorized to pull astronomer/astro-runtime anonymously"),
        "the webserver names no pull secret: {}",
        o.stderr
    );
    for text in [&o.stdout, &o.stderr] {
        assert!(!text.contains("St4le-pull-s3cret") && !text.contains(&auth));
    }
}

// ---- podman/skopeo auth.json (issue 13) ----

fn seeded_image(bed: &Bed, host: &str) -> (String, String) {
    let img = &bed.seed["images"][0];
    (
        format!(
            "{host}/{}:{}",
            img["repository"].as_str().expect("repository"),
            img["tag"].as_str().expect("tag")
        ),
        img["digest"].as_str().expect("digest").to_string(),
    )
}

fn auth_json(host: &str, user: &str, password: &str) -> String {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#)
}

/// containers-auth.json(5): `REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json`.
#[test]
fn credentials_come_from_podmans_auth_json() {
    let Some(bed) = Bed::get() else { return };
    let (image, digest) = seeded_image(&bed, &bed.reg_basic);
    // Without any credential: unauthorized (the bed's basic registry needs one).
    bed.run(&["resolve", &image]).assert_code(1);

    let dir = tempfile::tempdir().expect("tempdir");
    let file = crate::support::write_file(
        dir.path(),
        "auth.json",
        &auth_json(&bed.reg_basic, "testuser", "testpassword"),
    );
    let o = bed.run_with(&["resolve", &image, "-o", "json"], |c| {
        c.env("REGISTRY_AUTH_FILE", &file);
    });
    o.assert_code(0);
    assert_eq!(o.json()["items"][0]["digest"], digest.as_str());

    let runtime = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(runtime.path().join("containers")).expect("mkdir");
    std::fs::copy(&file, runtime.path().join("containers/auth.json")).expect("copy");
    let o = bed.run_with(&["resolve", &image, "-o", "json"], |c| {
        c.env_remove("REGISTRY_AUTH_FILE")
            .env("XDG_RUNTIME_DIR", runtime.path());
    });
    o.assert_code(0);
    assert_eq!(o.json()["items"][0]["digest"], digest.as_str());
}

/// containers-auth.json(5): a `host/namespace` key beats the plain `host` key for repositories
/// under that namespace.
#[test]
fn a_namespaced_auth_json_key_wins_for_its_repositories() {
    let Some(bed) = Bed::get() else { return };
    let (image, digest) = seeded_image(&bed, &bed.reg_basic);
    let repo = bed.seed["images"][0]["repository"]
        .as_str()
        .expect("repository");
    let namespace = repo.split('/').next().expect("namespace");
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = crate::support::write_file(
        dir.path(),
        "auth.json",
        &format!(
            r#"{{"auths":{{"{h}":{{"auth":"{wrong}"}},"{h}/{namespace}":{{"auth":"{right}"}}}}}}"#,
            h = bed.reg_basic,
            wrong = b64("testuser:wrong"),
            right = b64("testuser:testpassword"),
        ),
    );
    let o = bed.run_with(&["resolve", &image, "-o", "json"], |c| {
        c.env("REGISTRY_AUTH_FILE", &file);
    });
    o.assert_code(0);
    assert_eq!(o.json()["items"][0]["digest"], digest.as_str());
}

/// The documented order: the containers auth file before docker's config (a wrong password in
/// auth.json is used, and refused, even though config.json holds the right one).
#[test]
fn auth_json_comes_before_docker_config() {
    let Some(bed) = Bed::get() else { return };
    let (image, _) = seeded_image(&bed, &bed.reg_basic);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = crate::support::write_file(
        dir.path(),
        "auth.json",
        &auth_json(&bed.reg_basic, "testuser", "wrong"),
    );
    let o = bed.run_with(&["resolve", &image], |c| {
        c.env("REGISTRY_AUTH_FILE", &file)
            .env("DOCKER_CONFIG", &bed.docker_config);
    });
    o.assert_code(1);
    assert!(
        o.stderr.contains("with the configured credentials"),
        "{}",
        o.stderr
    );
    // Without the auth file, docker's config answers.
    bed.run_with(&["resolve", &image], |c| {
        c.env_remove("REGISTRY_AUTH_FILE")
            .env("DOCKER_CONFIG", &bed.docker_config);
    })
    .assert_code(0);
}
