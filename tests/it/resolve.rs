//! `resolve` against the real registries of the bed: every manifest kind, every auth flavour.
use crate::support;

use crate::support::Bed;

fn kinds(bed: &Bed) -> Vec<serde_json::Value> {
    let mut out = vec![];
    for kind in ["oci-manifest", "oci-index", "docker-list", "docker-v2s2"] {
        let img = bed.seed["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} seeded"))
            .clone();
        out.push(img);
    }
    out
}

#[test]
fn every_kind_resolves_to_the_seeded_digest_on_every_flavour() {
    let Some(bed) = Bed::get() else { return };
    let flavours = [
        bed.reg_plain.clone(),
        bed.reg_token.clone(),
        bed.reg_tls.clone(),
        bed.reg_basic.clone(),
    ];
    for img in kinds(&bed) {
        let refs: Vec<String> = flavours
            .iter()
            .map(|r| {
                format!(
                    "{r}/{}:{}",
                    img["repository"].as_str().unwrap(),
                    img["tag"].as_str().unwrap()
                )
            })
            .collect();
        let mut args = vec!["resolve", "-o", "json"];
        args.extend(refs.iter().map(String::as_str));
        // Basic auth comes from a docker config file, as users have it.
        let out = bed.run_with(&args, |c| {
            c.env("DOCKER_CONFIG", &bed.docker_config);
        });
        out.assert_code(0);
        let items = out.json()["items"].as_array().unwrap().clone();
        assert_eq!(items.len(), 4);
        for it in &items {
            assert_eq!(
                it["digest"], img["digest"],
                "{} ({})",
                it["image"], img["kind"]
            );
            assert_eq!(it["mediaType"], img["mediaType"], "{}", it["image"]);
        }
        if let Some(platforms) = img["platforms"].as_object().filter(|p| !p.is_empty()) {
            // Index: the platforms and their digests are listed.
            let listed = items[0]["platforms"].as_array().unwrap();
            for (p, d) in platforms {
                let hit = listed.iter().any(|x| {
                    x["platform"]
                        .as_str()
                        .is_some_and(|n| n == p || n.starts_with(&format!("{p}/")))
                        && x["digest"] == *d
                });
                assert!(hit, "{p} missing in {listed:?}");
            }
        }
    }
}

#[test]
fn platform_flag_gives_the_platform_manifest() {
    let Some(bed) = Bed::get() else { return };
    for img in kinds(&bed) {
        let reference = format!(
            "{}/{}:{}",
            bed.reg_token,
            img["repository"].as_str().unwrap(),
            img["tag"].as_str().unwrap()
        );
        let out = bed.run(&[
            "resolve",
            "--platform",
            "linux/arm64",
            "-o",
            "json",
            &reference,
        ]);
        out.assert_code(0);
        let item = &out.json()["items"][0];
        assert_eq!(
            item["digest"], img["digest"],
            "top-level digest still shown"
        );
        let expected = img["platforms"]
            .get("linux/arm64")
            .cloned()
            .unwrap_or_else(|| img["digest"].clone());
        assert_eq!(item["platformDigest"], expected, "{reference}");
        // wide shows both
        let wide = bed.run(&[
            "resolve",
            "--platform",
            "linux/arm64",
            "-o",
            "wide",
            &reference,
        ]);
        assert!(
            wide.stdout.contains(img["digest"].as_str().unwrap())
                && wide.stdout.contains(expected.as_str().unwrap()),
            "{}",
            wide.stdout
        );
    }
}

#[test]
fn wrong_credentials_fail_without_leaking_them() {
    let Some(bed) = Bed::get() else { return };
    let dir = tempfile::tempdir().unwrap();
    use base64::Engine;
    let secret = "s3cr3t-Wr0ng-pa55";
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("testuser:{secret}"));
    support::write_file(
        dir.path(),
        "config.json",
        &format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, bed.reg_basic),
    );
    let img = &kinds(&bed)[0];
    for reg in [&bed.reg_basic, &bed.reg_token] {
        let reference = format!(
            "{reg}/{}:{}",
            img["repository"].as_str().unwrap(),
            img["tag"].as_str().unwrap()
        );
        let out = bed.run_with(&["resolve", &reference, "-v", "-v"], |c| {
            c.env("DOCKER_CONFIG", dir.path());
        });
        if reg == &bed.reg_basic {
            out.assert_code(1);
            assert!(out.stderr.contains("unauthorized"), "{}", out.stderr);
            // Issue 23: which credential was refused: the docker config file, by its path.
            assert!(
                out.stderr.contains(&format!(
                    "with the configured credentials from the docker config {}",
                    dir.path().join("config.json").display()
                )),
                "{}",
                out.stderr
            );
        } else {
            // The wrong credentials are for the basic-auth registry only: the token registry
            // (anonymous pull) still resolves, so they were not sent where they do not belong.
            out.assert_code(0);
            assert!(
                out.stdout.contains(img["digest"].as_str().unwrap()),
                "{}\n{}",
                out.stdout,
                out.stderr
            );
        }
        for text in [&out.stdout, &out.stderr] {
            assert!(
                !text.contains(secret) && !text.contains(&auth),
                "credential leaked: {text}"
            );
        }
    }
    // Without any credentials, the hint says how to add them.
    let reference = format!(
        "{}/{}:{}",
        bed.reg_basic,
        img["repository"].as_str().unwrap(),
        img["tag"].as_str().unwrap()
    );
    let out = bed.run(&["resolve", &reference]);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains(&format!("docker login {}", bed.reg_basic)),
        "{}",
        out.stderr
    );
}

#[test]
fn tls_needs_the_ca_and_says_so() {
    let Some(bed) = Bed::get() else { return };
    let img = &kinds(&bed)[0];
    let reference = format!(
        "{}/{}:{}",
        bed.reg_tls,
        img["repository"].as_str().unwrap(),
        img["tag"].as_str().unwrap()
    );
    let out = bed.run_with(&["resolve", &reference], |c| {
        c.env_remove("ASTRO_SHA_REGISTRY_CA");
    });
    out.assert_code(1);
    assert!(
        out.stderr.contains("TLS")
            && out.stderr.contains(&bed.reg_tls)
            && out.stderr.contains("--registry-ca"),
        "{}",
        out.stderr
    );
    // Said once, by the command, with its hint: no library log line (reqwest's certificate
    // verifier logs every refused certificate at ERROR) repeats it at the default verbosity.
    assert_eq!(
        out.stderr.matches("UnknownIssuer").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("ERROR"), "{}", out.stderr);
    // --insecure-registry for that host only also works.
    let out = bed.run_with(
        &["resolve", &reference, "--insecure-registry", &bed.reg_tls],
        |c| {
            c.env_remove("ASTRO_SHA_REGISTRY_CA")
                .env_remove("ASTRO_SHA_INSECURE_REGISTRY");
        },
    );
    out.assert_code(0);
}

/// Issue 23: the same TLS failure was printed once per tag. It is printed once for the host,
/// with the number of references it cost; every reference still has its row.
#[test]
fn a_host_failure_is_printed_once_with_the_references_it_cost() {
    let Some(bed) = Bed::get() else { return };
    let refs: Vec<String> = (0..16)
        .map(|i| format!("{}/astronomer/astro-runtime:1.{i}.0", bed.reg_tls))
        .collect();
    let mut args = vec!["resolve", "-o", "json"];
    args.extend(refs.iter().map(String::as_str));
    let out = bed.run_with(&args, |c| {
        c.env_remove("ASTRO_SHA_REGISTRY_CA");
    });
    out.assert_code(1);
    assert_eq!(
        out.stderr.matches("TLS failure").count(),
        1,
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.matches("hint:").count(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("(16 references on {})", bed.reg_tls))
            && out.stderr.contains("--registry-ca"),
        "{}",
        out.stderr
    );
    let items = out.json()["items"].as_array().expect("items").len();
    assert_eq!(items, 16, "{}", out.stdout);
}

/// Issue 23: a host name that does not resolve was told to try --insecure-registry. It is told
/// to check the name, DNS and proxy; and, a host failure, it is said once for both references.
#[test]
fn a_host_that_does_not_resolve_gets_a_dns_hint() {
    let Some(bed) = Bed::get() else { return };
    let host = "astro-sha-test.invalid";
    let out = bed.run_with(
        &[
            "resolve",
            "--registry-retries",
            "0",
            &format!("{host}/astronomer/astro-runtime:1"),
            &format!("{host}/astronomer/astro-runtime:2"),
        ],
        |c| {
            for v in [
                "HTTPS_PROXY",
                "https_proxy",
                "HTTP_PROXY",
                "http_proxy",
                "ALL_PROXY",
                "all_proxy",
            ] {
                c.env_remove(v);
            }
        },
    );
    out.assert_code(1);
    assert!(
        out.stderr.contains(&format!(
            "{host}: cannot connect: the host name does not resolve"
        )) && out
            .stderr
            .contains("(2 references on astro-sha-test.invalid)")
            && out.stderr.contains("DNS"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("--insecure-registry"),
        "{}",
        out.stderr
    );
    // A TLS failure keeps its hint about --registry-ca / --insecure-registry (above).
}

#[test]
fn bad_references_and_missing_tags() {
    let Some(bed) = Bed::get() else { return };
    let out = bed.run(&["resolve", "127.0.0.1:5000/Bad/Name:1"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("127.0.0.1:5000/Bad/Name:1")
            && out.stderr.contains("invalid image reference"),
        "{}",
        out.stderr
    );
    // Issue 23: said as docker says it, not only "invalid reference format".
    assert!(
        out.stderr.contains("repository name must be lowercase"),
        "{}",
        out.stderr
    );
    let out = bed.run(&[
        "resolve",
        &format!("{}/runtime:does-not-exist", bed.reg_plain),
    ]);
    out.assert_code(1);
    assert!(out.stderr.contains("not found"), "{}", out.stderr);
    let out = bed.run(&[
        "resolve",
        "--registry-retries",
        "0",
        "--registry-timeout",
        "2s",
        "127.0.0.1:1/runtime:1",
    ]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("127.0.0.1:1") && out.stderr.contains("cannot connect"),
        "{}",
        out.stderr
    );
}

#[test]
fn one_manifest_request_per_unique_reference_and_one_token_per_repository() {
    let Some(bed) = Bed::get() else { return };
    let repo = format!("astro-sha-tests/count-{}/astro-runtime", std::process::id());
    let a = bed.push(
        &format!("{}/{repo}:1.0.0", bed.reg_plain),
        "oci-manifest",
        "a",
    );
    let b = bed.push(
        &format!("{}/{repo}:1.0.1", bed.reg_plain),
        "docker-v2s2",
        "b",
    );
    assert_ne!(a, b);
    let r1 = format!("{}/{repo}:1.0.0", bed.reg_token);
    let r2 = format!("{}/{repo}:1.0.1", bed.reg_token);
    let out = bed.run(&["resolve", "-o", "json", &r1, &r2, &r1, &r1, &r2]);
    out.assert_code(0);
    // Piped: no progress bar, no escape codes.
    assert!(
        out.stderr.is_empty(),
        "stderr must stay silent when piped: {:?}",
        out.stderr
    );
    assert!(!out.stdout.contains('\u{1b}'));
    let digests: Vec<String> = out.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["digest"].as_str().unwrap_or("none").to_string())
        .collect();
    assert_eq!(
        digests,
        [&a, &b, &a, &a, &b].map(String::clone),
        "one row per argument, in order, each with its digest"
    );
    let log = bed.registry_log("token");
    let manifest_requests = log
        .lines()
        .filter(|l| {
            l.contains("\"msg\":\"response completed")
                && l.contains(&format!("/v2/{repo}/manifests/"))
        })
        .count();
    assert_eq!(
        manifest_requests, 2,
        "two unique references, two manifest requests"
    );
    let tokens = bed
        .token_log()
        .lines()
        .filter(|l| l.contains(&repo))
        .count();
    assert_eq!(tokens, 1, "one token for the repository");
}

/// Pushes `n` tags (tiny OCI indexes) to a new repository (the plain registry: all four share
/// their storage) and returns the repository and each tag's digest, in tag order.
fn push_tags(bed: &Bed, name: &str, n: usize) -> (String, Vec<String>) {
    let repo = format!(
        "astro-sha-tests/{name}-{}/astro-runtime",
        std::process::id()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let batch: String = (0..n)
        .map(|i| format!("{}/{repo}:13.0.{i} oci-index {name}\n", bed.reg_plain))
        .collect();
    let batch_path = support::write_file(dir.path(), "batch.txt", &batch);
    let out_path = dir.path().join("pushed.json");
    let o = support::Out::from(
        std::process::Command::new(support::repo_root().join("scripts/testbed"))
            .arg("push")
            .arg("--batch")
            .arg(&batch_path)
            .arg("--out")
            .arg(&out_path)
            .env("ASTRO_SHA_TESTBED_DIR", &bed.dir)
            .output()
            .expect("run scripts/testbed push --batch"),
    );
    assert!(o.ok(), "testbed push --batch failed: {}", o.stderr);
    let pushed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_path).expect("pushed.json"))
            .expect("pushed.json parses");
    let digests = (0..n)
        .map(|i| pushed[i]["digest"].as_str().expect("digest").to_string())
        .collect();
    (repo, digests)
}

/// Runs `resolve -o json` of the 100 tags with the resolver's debug log, checks every digest, and
/// returns stderr (the log says which HTTP version the registry's probe was answered over).
fn resolve_100(bed: &Bed, host: &str, repo: &str, digests: &[String]) -> String {
    let refs: Vec<String> = (0..100)
        .map(|i| format!("{host}/{repo}:13.0.{i}"))
        .collect();
    let mut args = vec!["resolve", "-o", "json"];
    args.extend(refs.iter().map(String::as_str));
    let out = bed.run_with(&args, |c| {
        c.env("ASTRO_SHA_LOG", "kubectl_astro_sha=debug");
    });
    out.assert_code(0);
    let items = out.json()["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 100);
    for (item, digest) in items.iter().zip(digests) {
        assert_eq!(item["digest"], digest.as_str(), "{}", item["image"]);
    }
    out.stderr.clone()
}

/// Issue 18: HTTP/2 where the registry offers it. The bed's TLS registry (distribution on Go's
/// net/http, which chooses `h2` by ALPN) answers the probe over HTTP/2, and all 100 tags travel
/// over the one connection the probe opened: the registry's own log names one client address
/// and port for every manifest request (over HTTP/1.1, 16 in flight took 16 connections).
/// HTTP/1.1 stays the fallback: through the project's TLS proxy, which offers only http/1.1,
/// the same 100 tags resolve over HTTP/1.1.
#[test]
fn http2_carries_100_tags_over_one_connection_and_http1_stays_the_fallback() {
    let Some(bed) = Bed::get() else { return };
    let (repo, digests) = push_tags(&bed, "h2", 100);
    let stderr = resolve_100(&bed, &bed.reg_tls, &repo, &digests);
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("registry probed") && l.contains("version=HTTP/2.0")),
        "the TLS registry's probe was not answered over HTTP/2:\n{stderr}"
    );
    let log = bed.registry_log("tls");
    let mut clients = std::collections::BTreeSet::new();
    let mut requests = 0;
    for line in log
        .lines()
        .filter(|l| l.contains(&format!("/v2/{repo}/manifests/")))
    {
        let v: serde_json::Value = serde_json::from_str(line).expect("registry log line is JSON");
        if v["msg"] != "response completed" {
            continue;
        }
        requests += 1;
        clients.insert(
            v["http.request.remoteaddr"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
    }
    assert_eq!(requests, 100, "one manifest request per tag");
    assert_eq!(
        clients.len(),
        1,
        "100 tags over one connection, not {}: {clients:?}",
        clients.len()
    );

    let proxy = support::faults::Proxy::apiserver(&bed.dir, &bed.reg_tls, serde_json::json!([]));
    let stderr = resolve_100(&bed, &proxy.host(), &repo, &digests);
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("registry probed") && l.contains("version=HTTP/1.1")),
        "the http/1.1-only proxy's probe was not answered over HTTP/1.1:\n{stderr}"
    );
}
