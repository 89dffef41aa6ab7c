//! The binary as kubectl sees it, and its shell completion. Mostly without a cluster: kubectl
//! discovers plugins on PATH and runs them without talking to an API server; only the dynamic
//! completion of namespaces and release names reads the bed.
//!
//! * `kubectl plugin list` finds `kubectl-astro_sha` installed in a folder on PATH, and
//!   `kubectl astro-sha ...` runs it (help shows the plugin's name as users type it).
//! * `completion bash|zsh|fish|powershell` each print a real script for `kubectl-astro_sha`; bash
//!   (and fish or zsh where installed) load it and complete a subcommand and an option's values.
//! * `kubectl __complete astro-sha ...` — what kubectl's own completion runs on <TAB> — reaches the
//!   plugin through `kubectl_complete-astro_sha`, both the shell shim and the binary linked under
//!   that name.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::{repo_root, Bed, Out};

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-astro_sha");
const SUBCOMMANDS: [&str; 4] = ["resolve", "show", "completion", "version"];

/// kubectl from PATH; this proof is part of the issue, so a machine without kubectl fails here
/// instead of passing quietly.
fn kubectl() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join(if cfg!(windows) { "kubectl.exe" } else { "kubectl" }))
        .find(|p| p.is_file())
        .expect("kubectl is needed for this test (it runs no cluster); install it, e.g. apt-get install kubectl")
}

/// Puts `file` into `dir` under `name` the way an installer would: a symlink (as krew does on
/// Unix), a copy elsewhere.
fn install(file: &Path, dir: &Path, name: &str) -> PathBuf {
    let dest = dir.join(name);
    #[cfg(unix)]
    std::os::unix::fs::symlink(file, &dest).expect("symlink");
    #[cfg(not(unix))]
    std::fs::copy(file, &dest).expect("copy");
    dest
}

/// A folder holding the plugin as `kubectl-astro_sha`, and a kubectl command that sees it first
/// on PATH and reads no kubeconfig of the developer's.
struct PluginDir {
    dir: tempfile::TempDir,
}

impl PluginDir {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        install(Path::new(BIN), dir.path(), "kubectl-astro_sha");
        PluginDir { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn kubectl(&self, args: &[&str]) -> Out {
        let mut paths = vec![self.path().to_path_buf()];
        paths.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let out = Command::new(kubectl())
            .args(args)
            .env("PATH", std::env::join_paths(paths).expect("PATH"))
            .env("KUBECONFIG", self.path().join("no-kubeconfig"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl");
        Out::from(out)
    }
}

fn run(args: &[&str]) -> Out {
    Out::from(
        Command::new(BIN)
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl-astro_sha"),
    )
}

/// Candidates of a Cobra `__complete` answer (without descriptions and the directive line).
fn candidates(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| !l.starts_with(':') && !l.is_empty())
        .map(|l| l.split('\t').next().unwrap_or(l).to_string())
        .collect()
}

#[test]
fn kubectl_plugin_list_finds_the_installed_binary() {
    let d = PluginDir::new();
    let out = d.kubectl(&["plugin", "list"]);
    let ours = d.path().join("kubectl-astro_sha");
    assert!(
        out.stdout.lines().any(|l| Path::new(l.trim()) == ours),
        "kubectl plugin list does not list {}:\nstdout:\n{}\nstderr:\n{}",
        ours.display(),
        out.stdout,
        out.stderr
    );
    assert!(
        !out.stderr.contains(&ours.display().to_string()),
        "kubectl warns about the plugin: {}",
        out.stderr
    );
}

#[test]
fn kubectl_runs_the_plugin_under_its_kubectl_name() {
    let d = PluginDir::new();
    let help = d.kubectl(&["astro-sha", "--help"]);
    help.assert_code(0);
    assert!(
        help.stdout.contains("Usage: kubectl astro-sha"),
        "{}",
        help.stdout
    );
    for cmd in SUBCOMMANDS {
        assert!(
            help.stdout.contains(cmd),
            "{cmd} missing from help:\n{}",
            help.stdout
        );
    }

    // No arguments: the help on stdout and exit 0, as `kubectl` alone (issue 23).
    let bare = d.kubectl(&["astro-sha"]);
    bare.assert_code(0);
    assert!(
        bare.stdout
            .contains("Usage: kubectl astro-sha [OPTIONS] <COMMAND>")
            && bare.stdout.contains("Commands:")
            && bare.stderr.is_empty(),
        "{}\n{}",
        bare.stdout,
        bare.stderr
    );

    // Arguments and flags pass through kubectl untouched.
    let version = d.kubectl(&["astro-sha", "version", "-o", "json"]);
    let v = version.assert_code(0).json();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["commit"].as_str().is_some_and(|c| !c.is_empty()), "{v}");

    // A usage error is the plugin's, with the plugin's exit code.
    let bad = d.kubectl(&["astro-sha", "no-such-command"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("no-such-command"), "{}", bad.stderr);
}

#[test]
fn completion_scripts_for_each_shell() {
    let markers = [
        ("bash", "complete -F"),
        ("zsh", "#compdef kubectl-astro_sha"),
        ("fish", "complete -c kubectl-astro_sha"),
        ("powershell", "Register-ArgumentCompleter"),
    ];
    for (shell, marker) in markers {
        let out = run(&["completion", shell]);
        out.assert_code(0);
        let s = &out.stdout;
        assert!(s.len() > 1000, "{shell}: suspiciously short script:\n{s}");
        assert!(s.contains(marker), "{shell}: no {marker:?}");
        assert!(
            s.contains("kubectl-astro_sha"),
            "{shell}: not registered for kubectl-astro_sha"
        );
        for cmd in SUBCOMMANDS {
            assert!(s.contains(cmd), "{shell}: subcommand {cmd} missing");
        }
        for flag in ["all-namespaces", "output", "kubeconfig"] {
            assert!(s.contains(flag), "{shell}: flag {flag} missing");
        }
    }
    let bad = run(&["completion", "tcsh"]);
    assert_eq!(bad.code, 2, "an unknown shell is a usage error");
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Loads the bash script in bash and asks it what it completes, as bash would on <TAB>.
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let prog = format!(
        "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={cword}\nCOMP_LINE=\"${{COMP_WORDS[*]}}\"\nCOMP_POINT=${{#COMP_LINE}}\n\
         spec=$(complete -p kubectl-astro_sha) || exit 3\nfn=${{spec#*-F }}; fn=${{fn%% *}}\n\
         \"$fn\" kubectl-astro_sha '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script.display(),
        quoted.join(" "),
        words[cword],
        if cword > 0 { words[cword - 1] } else { "" },
    );
    let out = Out::from(
        Command::new("bash")
            .arg("-c")
            .arg(prog)
            .output()
            .expect("run bash"),
    );
    out.assert_code(0);
    out.stdout
        .lines()
        .map(String::from)
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn bash_completes_commands_flags_and_values() {
    assert!(have("bash"), "bash is needed to load the bash completion");
    let dir = tempfile::tempdir().expect("tempdir");
    let script = support::write_file(dir.path(), "k.bash", &run(&["completion", "bash"]).stdout);
    assert_eq!(
        bash_complete(&script, &["kubectl-astro_sha", "sh"]),
        vec!["show"]
    );
    assert_eq!(
        bash_complete(&script, &["kubectl-astro_sha", "show", "-o", ""]),
        vec!["table", "wide", "json", "yaml"]
    );
    assert_eq!(
        bash_complete(&script, &["kubectl-astro_sha", "show", "--all-n"]),
        vec!["--all-namespaces"]
    );
    assert_eq!(
        bash_complete(&script, &["kubectl-astro_sha", "completion", "p"]),
        vec!["powershell"]
    );
}

/// fish and zsh are not on every machine; where they are, the scripts load and fish completes.
#[test]
fn fish_and_zsh_load_their_scripts_where_installed() {
    let dir = tempfile::tempdir().expect("tempdir");
    if have("fish") {
        let script =
            support::write_file(dir.path(), "k.fish", &run(&["completion", "fish"]).stdout);
        let ask = |line: &str| {
            let out = Out::from(
                Command::new("fish")
                    .arg("-c")
                    .arg(format!(
                        "source '{}'; complete -C '{line}'",
                        script.display()
                    ))
                    .output()
                    .expect("run fish"),
            );
            out.assert_code(0);
            candidates(&out.stdout)
        };
        assert_eq!(ask("kubectl-astro_sha sh"), vec!["show"]);
        assert_eq!(
            ask("kubectl-astro_sha show --all-n"),
            vec!["--all-namespaces"]
        );
        let mut values = ask("kubectl-astro_sha show -o ");
        values.sort();
        assert_eq!(values, vec!["json", "table", "wide", "yaml"]);
    } else {
        // scripts/testbed install puts fish on CI machines: there, its absence is a failure.
        assert!(
            !crate::support::under_ci(),
            "fish is not installed under CI (scripts/testbed install adds it)"
        );
        eprintln!("NOTE: fish not installed; its script was only checked as text");
    }
    if have("zsh") {
        let script = support::write_file(
            dir.path(),
            "_kubectl-astro_sha",
            &run(&["completion", "zsh"]).stdout,
        );
        let out = Out::from(
            Command::new("zsh")
                .arg("-n")
                .arg(&script)
                .output()
                .expect("run zsh"),
        );
        assert!(out.ok(), "zsh rejects the script: {}", out.stderr);
    } else {
        // scripts/testbed install puts zsh on CI machines: there, its absence is a failure.
        assert!(
            !crate::support::under_ci(),
            "zsh is not installed under CI (scripts/testbed install adds it)"
        );
        eprintln!("NOTE: zsh not installed; its script was only checked as text");
    }
}

/// `kubectl astro-sha <TAB>`: kubectl runs `kubectl_complete-astro_sha` from PATH with the
/// words after the plugin name; here through the shell shim from scripts/.
#[test]
fn kubectl_completes_the_plugin_through_the_shim() {
    let d = PluginDir::new();
    let shim = repo_root().join("scripts/kubectl_complete-astro_sha");
    install(&shim, d.path(), "kubectl_complete-astro_sha");
    assert_kubectl_completes(&d);
}

/// The same through the binary itself linked under the helper's name (no shell needed, so
/// it also works on Windows, and it is what the krew caveats suggest).
#[test]
fn kubectl_completes_the_plugin_through_the_linked_binary() {
    let d = PluginDir::new();
    install(Path::new(BIN), d.path(), "kubectl_complete-astro_sha");
    assert_kubectl_completes(&d);
}

fn assert_kubectl_completes(d: &PluginDir) {
    let first = d.kubectl(&["__complete", "astro-sha", ""]);
    first.assert_code(0);
    let c = candidates(&first.stdout);
    for cmd in SUBCOMMANDS {
        assert!(
            c.iter().any(|x| x == cmd),
            "{cmd} not offered through kubectl:\n{}\n{}",
            first.stdout,
            first.stderr
        );
    }
    assert!(
        first.stdout.lines().any(|l| l == ":4"),
        "no NoFileComp directive:\n{}",
        first.stdout
    );

    let flag = d.kubectl(&["__complete", "astro-sha", "show", "--all-n"]);
    assert_eq!(
        candidates(&flag.stdout),
        vec!["--all-namespaces"],
        "{}",
        flag.stderr
    );

    let values = d.kubectl(&["__complete", "astro-sha", "resolve", "-o", ""]);
    assert_eq!(
        candidates(&values.stdout),
        vec!["table", "wide", "json", "yaml"],
        "{}",
        values.stderr
    );
}

#[test]
fn cobra_protocol_answers_any_input_without_failing() {
    for words in [
        vec![],
        vec![""],
        vec!["--nonsense", "x", ""],
        vec!["show", "-n"],
    ] {
        let mut args = vec!["__complete"];
        args.extend(words.iter().copied());
        let out = run(&args);
        out.assert_code(0);
        assert!(out.stdout.ends_with(":4\n"), "{words:?}: {}", out.stdout);
        assert!(out.stderr.is_empty(), "{words:?}: {}", out.stderr);
    }
}

#[test]
fn completion_help_says_how_to_hook_it_up() {
    let out = run(&["completion", "--help"]);
    out.assert_code(0);
    for needle in [
        "kubectl_complete-astro_sha",
        "kubectl-astro_sha completion bash",
        "kubectl __complete astro-sha",
        "~/.krew/bin",
        "1.26",
    ] {
        assert!(
            out.stdout.contains(needle),
            "completion --help lacks {needle:?}:\n{}",
            out.stdout
        );
    }
}

/// A value taken from an environment variable is not a flag typed: a usage error's usage line
/// names none of them (clap listed `--insecure-registry <HOST>` for ASTRO_SHA_INSECURE_REGISTRY).
#[test]
fn usage_lines_do_not_list_flags_set_from_the_environment() {
    for args in [
        &["resolve"][..],
        &["pin", "--all", "quasaric-sun-1234"],
        &["show", "--no-such-flag"],
    ] {
        let out = Out::from(
            Command::new(BIN)
                .args(args)
                .env("ASTRO_SHA_INSECURE_REGISTRY", "mirror.corp:5000")
                .env("ASTRO_SHA_RUNTIME_REPOSITORY", "mirror.corp:5000/runtime")
                .env("ASTRO_SHA_REGISTRY_MIRROR", "quay.io=mirror.corp:5000")
                .env("ASTRO_SHA_REGISTRY_CA", "/etc/ssl/mirror.pem")
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .output()
                .expect("run kubectl-astro_sha"),
        );
        out.assert_code(2);
        let usage = out
            .stderr
            .lines()
            .find(|l| l.starts_with("Usage: "))
            .unwrap_or_else(|| panic!("{args:?}: no usage line:\n{}", out.stderr));
        assert!(
            usage.starts_with(&format!("Usage: kubectl astro-sha {} [OPTIONS]", args[0])),
            "{args:?}: {usage}"
        );
        for flag in [
            "--insecure-registry",
            "--runtime-repository",
            "--registry-mirror",
            "--registry-ca",
        ] {
            assert!(!usage.contains(flag), "{args:?}: {usage}");
        }
    }
}

/// `__complete` as kubectl's completion runs it, against the bed: the words after the plugin name.
fn complete(bed: &Bed, words: &[&str], f: impl FnOnce(&mut Command)) -> Out {
    let mut args = vec!["__complete"];
    args.extend(words);
    let out = bed.run_with(&args, f);
    out.assert_code(0);
    assert!(out.stderr.is_empty(), "{words:?}: {}", out.stderr);
    out
}

fn directive(out: &Out) -> &str {
    out.stdout.lines().last().unwrap_or_default()
}

/// The seeded Airflow releases and their namespaces.
fn seeded_releases(bed: &Bed) -> Vec<(String, String)> {
    bed.seed["platform"]["releases"]
        .as_object()
        .expect("seeded releases")
        .iter()
        .map(|(r, v)| (r.clone(), v["namespace"].as_str().unwrap().to_string()))
        .collect()
}

/// Like kubectl's: `-n <TAB>` and `--platform-namespace <TAB>` offer the cluster's namespaces,
/// a RELEASE <TAB> the Airflow releases (in `-n`'s namespace when typed), each read with the
/// connection flags typed on the line; a cluster that refuses or cannot be reached offers
/// nothing and prints nothing (issue 23).
#[test]
fn namespaces_and_release_names_complete_from_the_cluster() {
    let Some(bed) = Bed::get() else { return };
    let releases = seeded_releases(&bed);
    assert!(releases.len() >= 2, "{releases:?}");

    let out = complete(&bed, &["show", "-n", ""], |_| {});
    let c = candidates(&out.stdout);
    for ns in ["default", "kube-system", "astronomer"] {
        assert!(
            c.iter().any(|x| x == ns),
            "{ns} not offered: {}",
            out.stdout
        );
    }
    assert_eq!(directive(&out), ":4");
    let out = complete(&bed, &["status", "--platform-namespace", "astro"], |_| {});
    let c = candidates(&out.stdout);
    assert!(c.iter().any(|x| x == "astronomer"), "{}", out.stdout);
    assert!(c.iter().all(|x| x.starts_with("astro")), "{}", out.stdout);

    for cmd in ["show", "pin", "unpin"] {
        let out = complete(&bed, &[cmd, ""], |_| {});
        let c = candidates(&out.stdout);
        for (r, _) in &releases {
            assert!(c.contains(r), "{cmd}: {r} not offered: {}", out.stdout);
        }
    }
    // -n narrows them to that namespace
    let (r, ns) = &releases[0];
    let out = complete(&bed, &["pin", "-n", ns, ""], |_| {});
    assert_eq!(candidates(&out.stdout), vec![r.clone()]);

    // the kubeconfig and context typed are the ones read ($KUBECONFIG names nothing here)
    let kubeconfig = bed.kubeconfig.to_str().unwrap();
    let nowhere = |c: &mut Command| {
        c.env("KUBECONFIG", "/nonexistent/kubeconfig");
    };
    let out = complete(&bed, &["unpin", "--kubeconfig", kubeconfig, ""], nowhere);
    assert!(candidates(&out.stdout).contains(r), "{}", out.stdout);
    let out = complete(&bed, &["unpin", ""], nowhere);
    assert_eq!(candidates(&out.stdout), Vec::<String>::new());
    let out = complete(
        &bed,
        &[
            "show",
            "--kubeconfig",
            kubeconfig,
            "--context",
            "testbed-norights",
            "-n",
            "",
        ],
        nowhere,
    );
    assert_eq!(candidates(&out.stdout), Vec::<String>::new(), "no rights");
    assert_eq!(directive(&out), ":4");
    // an API server that is not there: nothing, at once (connection refused)
    let out = complete(
        &bed,
        &[
            "show",
            "--server",
            "https://127.0.0.1:1",
            "--insecure-skip-tls-verify",
            "-n",
            "",
        ],
        |_| {},
    );
    assert_eq!(candidates(&out.stdout), Vec::<String>::new());
}

/// kubectl hands a plugin's answers back to the shell with their directive: file flags leave
/// the completion to the shell (Cobra's default directive, 0), the cluster's namespaces come
/// through kubectl too.
#[test]
fn kubectl_passes_file_completion_and_namespaces_through() {
    let Some(bed) = Bed::get() else { return };
    let d = PluginDir::new();
    install(Path::new(BIN), d.path(), "kubectl_complete-astro_sha");
    let out = d.kubectl(&["__complete", "astro-sha", "enable", "--values", ""]);
    out.assert_code(0);
    assert_eq!(
        candidates(&out.stdout),
        Vec::<String>::new(),
        "{}",
        out.stdout
    );
    assert!(out.stdout.lines().any(|l| l == ":0"), "{}", out.stdout);
    let kubeconfig = bed.kubeconfig.to_str().unwrap();
    let out = d.kubectl(&[
        "__complete",
        "astro-sha",
        "show",
        "--kubeconfig",
        kubeconfig,
        "-n",
        "",
    ]);
    out.assert_code(0);
    assert!(
        candidates(&out.stdout).iter().any(|c| c == "kube-system"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
}
