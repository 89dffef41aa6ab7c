//! Everything that goes to a person or a script: kubectl-style tables on stdout (fitted to the
//! terminal, never shortened in a pipe: `table`), JSON/YAML for scripts, colour only on a terminal
//! without NO_COLOR, progress bars only on a terminal (stderr).

use std::io::{IsTerminal, Write};
use std::path::Path;

use serde::Serialize;

use crate::core::state::StateKey;
use crate::error::{Error, Result};

/// `-o`: how results are printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum OutputFormat {
    #[default]
    Table,
    Wide,
    Json,
    Yaml,
}

pub(crate) mod status;
mod table;

pub(crate) use table::Table;

/// Writes to stdout, turning a closed pipe (`| head`) into a quiet exit rather than a panic.
pub(crate) fn print(s: &str) -> Result<()> {
    print_bytes(s.as_bytes())
}

/// [`print`] for bytes that need not be UTF-8 (generated scripts are passed through untouched).
pub(crate) fn print_bytes(b: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(b).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::new(format!("cannot write to stdout: {e}"))),
    }
}

/// JSON or YAML rendering of a report; `None` for table formats.
pub(crate) fn structured<T: Serialize>(value: &T, format: OutputFormat) -> Result<Option<String>> {
    match format {
        OutputFormat::Json => {
            let mut s = serde_json::to_string_pretty(value)?;
            s.push('\n');
            Ok(Some(s))
        }
        OutputFormat::Yaml => serde_yaml_ng::to_string(value)
            .map(Some)
            .map_err(|e| Error::new(format!("cannot render YAML: {e}"))),
        OutputFormat::Table | OutputFormat::Wide => Ok(None),
    }
}

/// Colour on stdout only when it is a terminal and NO_COLOR is unset (https://no-color.org).
pub(crate) fn color_enabled() -> bool {
    color_wanted(
        std::env::var_os("NO_COLOR").as_deref(),
        std::io::stdout().is_terminal(),
    )
}

/// The decision behind [`color_enabled`], apart from the process state so it can be tested:
/// NO_COLOR set to anything but the empty string turns colour off even on a terminal (the
/// no-color.org rule), and a pipe or file never gets escape codes.
fn color_wanted(no_color: Option<&std::ffi::OsStr>, stdout_is_terminal: bool) -> bool {
    no_color.is_none_or(|v| v.is_empty()) && stdout_is_terminal
}

/// How a state looks in a table: green settled, yellow needs action, red broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tone {
    Settled,
    Action,
    Broken,
}

impl From<StateKey> for Tone {
    fn from(k: StateKey) -> Tone {
        match k {
            StateKey::Pinned => Tone::Settled,
            StateKey::TagOnly | StateKey::UnlistedBuild => Tone::Action,
            StateKey::Drifted
            | StateKey::OtherVersion
            | StateKey::RunningDiffers
            | StateKey::Unresolved => Tone::Broken,
        }
    }
}

/// Colours `text` by its tone (when `color`).
pub(crate) fn paint(text: &str, tone: Tone, color: bool) -> String {
    use owo_colors::OwoColorize;
    let text = safe(text);
    if !color {
        return text.into_owned();
    }
    match tone {
        Tone::Settled => text.green().to_string(),
        Tone::Action => text.yellow().to_string(),
        Tone::Broken => text.red().to_string(),
    }
}

/// Colours a container state's label (`unresolved: ...` included) by its typed state.
pub(crate) fn paint_state(text: &str, state: StateKey, color: bool) -> String {
    paint(text, state.into(), color)
}

/// Text from a registry, the cluster or a file made safe for a terminal: control characters
/// (escape sequences, bells, carriage returns, C1 controls) are removed, line breaks kept. Every
/// error, warning and prompt goes through it; table cells too (one function for all of them).
/// Char-based, so it never splits a UTF-8 sequence.
pub(crate) fn safe(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(|c| c.is_control() && c != '\n') {
        text.chars()
            .filter(|c| !c.is_control() || *c == '\n')
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}

/// The colour sequences [`paint`] opens a cell with (green, yellow, red), and the one it closes
/// it with (default foreground).
const PAINT_STARTS: [&str; 3] = ["\u{1b}[32m", "\u{1b}[33m", "\u{1b}[31m"];
const PAINT_END: &str = "\u{1b}[39m";

/// A table cell made terminal-safe: [`safe`] (no line breaks either), except a cell exactly as
/// [`paint`] writes it (one of its colours, text without control characters, its reset) is kept
/// whole. A colour sequence anywhere else (a registry's `ESC[31m` inside an image reference, with
/// no reset after it) is text like any other escape and loses its ESC, so it cannot recolour the
/// rest of the terminal.
pub(crate) fn safe_cell(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    let painted = PAINT_STARTS
        .iter()
        .find_map(|start| text.strip_prefix(start)?.strip_suffix(PAINT_END))
        .is_some_and(|inner| !inner.chars().any(char::is_control));
    if painted {
        return text.into();
    }
    text.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .into()
}

/// What `write_atomically` replaces.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Replacing<'a> {
    /// An existing file being edited in place: it must still hold exactly this text when the new
    /// one goes in, else nothing is written. A symlink is written through to its target; the
    /// target's permissions (and, as root, owner) are kept; a read-only file is refused.
    Edit(&'a str),
    /// A file written whole (new, or replaced): an existing file's permission bits are kept,
    /// a new one gets 0644. A symlink is written through to its target; a dangling one is refused.
    Whole,
}

/// The one atomic write: a temporary file in the target's directory, fsync, rename. A reader never
/// sees half a file, and an error leaves the old file as it was.
pub(crate) fn write_atomically(path: &Path, content: &str, replacing: Replacing) -> Result<()> {
    match replacing {
        Replacing::Edit(old) => edit_in_place(path, old, content),
        Replacing::Whole => write_whole(path, content),
    }
}

fn temp_with(dir: &Path, content: &str) -> std::io::Result<tempfile::NamedTempFile> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".astro-sha-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(content.as_bytes())?;
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

fn edit_in_place(path: &Path, old: &str, new: &str) -> Result<()> {
    let shown = path.display().to_string();
    let target = std::fs::canonicalize(path)
        .map_err(|e| Error::new(format!("cannot resolve {shown}: {e}")))?;
    let meta = std::fs::metadata(&target)
        .map_err(|e| Error::new(format!("cannot read the metadata of {shown}: {e}")))?;
    let unwritable = |why: String| {
        Error::new(format!("cannot write {shown}: {why}; nothing was written")).hint(
            "make the file writable (e.g. chmod u+w), or use --dry-run / --print to see the change",
        )
    };
    if meta.permissions().readonly() {
        return Err(unwritable("the file is read-only".into()));
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(&target)
        .map_err(|e| unwritable(e.to_string()))?;
    let dir = target.parent().unwrap_or_else(|| Path::new("."));
    let tmp = temp_with(dir, new).map_err(|e| {
        unwritable(format!(
            "cannot write a temporary file in {}: {e}",
            dir.display()
        ))
    })?;
    std::fs::set_permissions(tmp.path(), meta.permissions())
        .map_err(|e| unwritable(format!("cannot copy permissions: {e}")))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // Best effort: only root may give a file away; others keep their own ownership anyway.
        let _ = std::os::unix::fs::chown(tmp.path(), Some(meta.uid()), Some(meta.gid()));
    }
    let now = std::fs::read(&target).map_err(|e| unwritable(e.to_string()))?;
    if now != old.as_bytes() {
        return Err(Error::new(format!(
            "{shown} changed while it was being edited; nothing was written"
        ))
        .hint("run the command again"));
    }
    tmp.persist(&target)
        .map_err(|e| unwritable(e.error.to_string()))?;
    Ok(())
}

fn write_whole(path: &Path, content: &str) -> Result<()> {
    // A symlink is written through to its target (a rename onto the link would replace the link
    // with a plain file); a link to nothing is refused rather than guessed at.
    let resolved;
    let path = if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        resolved = std::fs::canonicalize(path).map_err(|e| {
            Error::new(format!(
                "cannot write {}: it is a symbolic link whose target cannot be resolved ({e}); nothing was written",
                path.display()
            ))
            .hint("point the link at an existing file, or remove it and write a plain file")
        })?;
        resolved.as_path()
    } else {
        path
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let fail = |e: std::io::Error| {
        Error::new(format!("cannot write {}: {e}", path.display()))
            .hint("check that the directory exists and is writable")
    };
    let tmp = temp_with(&dir, content).map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode())
            .unwrap_or(0o644);
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
            .map_err(fail)?;
    }
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// The one confirmation before any write to the cluster or to a user's file (pin, unpin,
/// enable, import), and its one policy: `--yes` answers it beforehand; with a terminal on stdin
/// and stderr the question is asked (default no); without one, and without `--yes`, nothing is
/// written: an error (exit 2) that names `--yes`. A piped run (`pin --all -A | tee log`) never
/// writes by default.
pub(crate) fn confirm(question: &str, yes: bool) -> Result<bool> {
    ask(question, yes, Shown::Above)
}

/// [`confirm`] for a write whose change was not printed before the question (import prints its
/// report after writing): without a terminal, the hint points at `--dry-run` only.
pub(crate) fn confirm_unshown(question: &str, yes: bool) -> Result<bool> {
    ask(question, yes, Shown::NotYet)
}

/// Whether the change was printed before the question.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shown {
    Above,
    NotYet,
}

fn ask(question: &str, yes: bool, shown: Shown) -> Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(unattended(question, shown));
    }
    let fail = |e: std::io::Error| {
        Error::new(format!("cannot read the confirmation: {e}"))
            .hint("pass --yes to skip the question")
    };
    let term = dialoguer::console::Term::stderr();
    term.write_str(&format!("{} [y/N] ", safe(question)))
        .map_err(fail)?;
    let answer = loop {
        let key = match term.read_key_raw() {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => None,
            key => Some(key.map_err(fail)?),
        };
        if let Some(a) = Answer::of(key) {
            break a;
        }
    };
    term.write_line(answer.echo()).map_err(fail)?;
    match answer {
        Answer::Yes => Ok(true),
        Answer::No => Ok(false),
        Answer::Interrupted => Err(Error::interrupted("Interrupted; nothing was changed.")),
    }
}

/// What a key pressed at the confirmation means. The question is read a key at a time (raw
/// mode, as dialoguer does), and every way out of it leaves a line behind it: `y` is yes; `n`,
/// Enter (the default), Esc and Ctrl-D (end of input, what a line reader would get) are no;
/// Ctrl-C is an interrupt (exit 130), answered here rather than by a signal that would end the
/// process mid-line. Other keys are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Yes,
    No,
    Interrupted,
}

impl Answer {
    /// `None` (end of input) counts as Ctrl-D.
    fn of(key: Option<dialoguer::console::Key>) -> Option<Answer> {
        use dialoguer::console::Key;
        match key {
            Some(Key::Char('y' | 'Y')) => Some(Answer::Yes),
            Some(Key::Char('n' | 'N' | '\u{4}') | Key::Enter | Key::Escape) | None => {
                Some(Answer::No)
            }
            Some(Key::CtrlC) => Some(Answer::Interrupted),
            Some(_) => None,
        }
    }

    /// What the terminal shows after the question.
    fn echo(self) -> &'static str {
        match self {
            Answer::Yes => "yes",
            Answer::No => "no",
            Answer::Interrupted => "^C",
        }
    }
}

/// The refusal when there is no terminal to ask on.
fn unattended(question: &str, shown: Shown) -> Error {
    Error::new(format!(
        "{question} Not answered: stdin or stderr is not a terminal to ask on, and --yes was not given; nothing was written"
    ))
    .hint(match shown {
        Shown::Above => "review the change (shown above, or with --dry-run), then pass --yes to write it",
        Shown::NotYet => "review the change with --dry-run (it prints what would be written), then pass --yes to write it",
    })
}

/// A progress bar on stderr when it is a terminal; hidden (free) otherwise.
pub(crate) fn progress(len: u64, message: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    let style =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({rate}, {eta})")
            .map(|s| {
                s.progress_chars("=> ").with_key(
                    "rate",
                    |st: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = w.write_str(&rate(st.per_sec()));
                    },
                )
            })
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    pb.set_style(style);
    pb.set_message(message.to_string());
    pb
}

pub(crate) use crate::core::short_digest;

/// A rate as people read one: whole numbers from 10 a second up, one decimal below
/// (`239/s`, `2.5/s`), never indicatif's `239.2803/s`.
fn rate(per_sec: f64) -> String {
    if !per_sec.is_finite() || per_sec <= 0.0 {
        "0/s".into()
    } else if per_sec >= 10.0 {
        format!("{per_sec:.0}/s")
    } else {
        format!("{per_sec:.1}/s")
    }
}

/// The one pluralising rule (`core::plural`, `core::count`), for messages printed here.
pub(crate) use crate::core::{count, plural};

/// A short name for a manifest media type.
pub(crate) fn media_type_short(mt: &str) -> &str {
    match mt {
        "application/vnd.oci.image.index.v1+json" => "oci-index",
        "application/vnd.oci.image.manifest.v1+json" => "oci-manifest",
        "application/vnd.docker.distribution.manifest.list.v2+json" => "docker-list",
        "application/vnd.docker.distribution.manifest.v2+json" => "docker-v2",
        "" => "-",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_keep_only_our_own_colours() {
        let painted = paint("pinned\u{1b}[2J", Tone::Settled, true);
        assert_eq!(safe_cell(&painted), "\u{1b}[32mpinned[2J\u{1b}[39m");
        assert_eq!(safe_cell("a\u{1b}]0;title\u{7}b\nc é"), "a]0;titlebc é");
        // Our colours outside paint's shape are not ours: no ESC survives, nothing stays red.
        assert_eq!(safe_cell("x\u{1b}[31mred"), "x[31mred");
        assert_eq!(safe_cell("\u{1b}[31mz\u{1b}[0m\u{1b}[39m"), "[31mz[0m[39m");
    }

    #[test]
    fn safe_removes_controls_keeps_lines_and_non_ascii() {
        assert_eq!(safe("a\u{1b}[2Jb\u{7}\r\u{9b}c\nnext é"), "a[2Jbc\nnext é");
        assert!(matches!(safe("plain ✓"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn digests_shorten() {
        assert_eq!(
            short_digest(&format!("sha256:{}", "ab".repeat(32))),
            "sha256:abababababab"
        );
        assert_eq!(short_digest("-"), "-");
        // Never a panic, whatever a registry or an annotation put there (issue 11/14).
        assert_eq!(short_digest("sha256:aéééééééééééé"), "sha256:aééééééééééé");
        assert_eq!(short_digest("sha256:日本語"), "sha256:日本語");
    }

    #[test]
    fn no_color_turns_colour_off_even_on_a_terminal() {
        use std::ffi::OsStr;
        assert!(color_wanted(None, true));
        assert!(!color_wanted(Some(OsStr::new("1")), true));
        assert!(
            !color_wanted(Some(OsStr::new("false")), true),
            "any value counts"
        );
        assert!(
            color_wanted(Some(OsStr::new("")), true),
            "empty means unset"
        );
        assert!(!color_wanted(None, false), "never colour a pipe");
    }

    #[test]
    fn without_a_terminal_only_yes_confirms() {
        // The test runner's stdin is not a terminal (cargo test gives it none, CI has none).
        if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
            return;
        }
        assert!(confirm("Pin 3 object(s)?", true).unwrap());
        let e = confirm("Pin 3 object(s)?", false).unwrap_err();
        assert!(e.message.contains("--yes") && e.message.contains("nothing was written"));
        assert!(e.message.starts_with("Pin 3 object(s)?"));
        assert_eq!(e.code(), crate::error::EXIT_ERROR);
        assert!(e.hint.unwrap().contains("shown above"));
        // a change not printed yet (import) is not said to be "shown above"
        let e = confirm_unshown("Write the catalog?", false).unwrap_err();
        let hint = e.hint.unwrap();
        assert!(
            !hint.contains("shown above") && hint.contains("--dry-run"),
            "{hint}"
        );
    }

    #[test]
    fn every_way_out_of_the_question_is_an_answer() {
        use dialoguer::console::Key;
        for (key, want) in [
            (Some(Key::Char('y')), Some(Answer::Yes)),
            (Some(Key::Char('Y')), Some(Answer::Yes)),
            (Some(Key::Char('n')), Some(Answer::No)),
            (Some(Key::Enter), Some(Answer::No)),
            (Some(Key::Escape), Some(Answer::No)),
            (Some(Key::Char('\u{4}')), Some(Answer::No)),
            (None, Some(Answer::No)),
            (Some(Key::CtrlC), Some(Answer::Interrupted)),
            (Some(Key::Char('x')), None),
            (Some(Key::ArrowUp), None),
        ] {
            assert_eq!(Answer::of(key.clone()), want, "{key:?}");
        }
    }

    #[test]
    fn rates_and_counts_read_as_people_write_them() {
        assert_eq!(rate(239.2803), "239/s");
        assert_eq!(rate(9.5821), "9.6/s");
        assert_eq!(rate(0.0), "0/s");
        assert_eq!(rate(f64::NAN), "0/s");
        assert_eq!(count(1, "tag", "tags"), "1 tag");
        assert_eq!(count(0, "tag", "tags"), "0 tags");
        assert_eq!(count(2, "version", "versions"), "2 versions");
        assert_eq!(
            count(1, "container carries", "containers carry"),
            "1 container carries"
        );
        assert_eq!(plural(1, "is", "are"), "is");
        assert_eq!(plural(0, "is", "are"), "are");
    }

    #[test]
    fn paint_is_plain_without_colour() {
        assert_eq!(paint_state("drifted", StateKey::Drifted, false), "drifted");
        assert!(paint_state("drifted", StateKey::Drifted, true).contains("\u{1b}[31m"));
        assert!(paint("pinned", StateKey::Pinned.into(), true).contains("\u{1b}[32m"));
        assert!(paint("tag-only", StateKey::TagOnly.into(), true).contains("\u{1b}[33m"));
    }
}
