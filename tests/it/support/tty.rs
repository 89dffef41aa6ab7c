//! The plugin on a terminal: a pty from util-linux `script`, for the confirmation prompt.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use super::Bed;

/// Runs `args` on a terminal; once the confirmation is asked (`[y/N]` shown), calls
/// `at_the_question` with the plugin's pid and types what it returns. Returns the exit code
/// (`script -e` passes the plugin's on) and everything the terminal showed.
pub fn on_a_terminal(
    bed: &Bed,
    args: &[&str],
    at_the_question: impl FnOnce(u32) -> String,
) -> (i32, String) {
    let cmd = bed.cmd();
    let line = std::iter::once(cmd.get_program().to_string_lossy().into_owned())
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut script = Command::new("script");
    script.args(["-qec", &line, "/dev/null"]);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    let mut child = script
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` gives the command a terminal");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    // Act only once the question is on the terminal.
    while !String::from_utf8_lossy(&seen).contains("[y/N]") {
        let n = stdout.read(&mut buf).expect("read the terminal");
        assert!(
            n > 0,
            "ended without asking: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    let plugin = plugin_under(child.id()).expect("the plugin runs under `script`");
    wait_for_raw_mode(plugin);
    let answer = at_the_question(plugin);
    // The plugin may be gone already (a signal ended it): then nobody reads the answer.
    let _ = stdin.write_all(answer.as_bytes());
    drop(stdin);
    stdout.read_to_end(&mut seen).expect("read the rest");
    let status = child.wait().expect("wait");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&seen).into_owned(),
    )
}

/// The plugin's pid among the descendants of `root` (script, and the shell it may start).
fn plugin_under(root: u32) -> Option<u32> {
    let mut parents = vec![root];
    while let Some(p) = parents.pop() {
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // pid (comm) state ppid ...: comm may hold spaces, so split after its ')'.
            let Some((head, rest)) = stat.rsplit_once(") ") else {
                continue;
            };
            let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
            if ppid != Some(p) {
                continue;
            }
            if head.contains("(kubectl-astro_s") {
                return Some(pid);
            }
            parents.push(pid);
        }
    }
    None
}

/// Whether a process is gone (or a zombie, which runs nothing).
pub fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

/// dialoguer prints the question, then puts the terminal in raw mode to read one key: a key sent
/// in between is echoed by the line discipline (`[y/N] nno`, seen once in a full run). Waits, at
/// most 500 polls, until the plugin's terminal is out of canonical mode (`stty` shows `-icanon`).
fn wait_for_raw_mode(plugin: u32) {
    let Ok(tty) = std::fs::read_link(format!("/proc/{plugin}/fd/0")) else {
        return;
    };
    for _ in 0..500 {
        let out = Command::new("stty").arg("-F").arg(&tty).arg("-a").output();
        if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("-icanon")) || gone(plugin)
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
