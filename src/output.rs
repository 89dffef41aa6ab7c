//! Everything that goes to a person or a script: kubectl-style tables on stdout, JSON/YAML for
//! scripts, colour only on a terminal without NO_COLOR, progress bars only on a terminal (stderr).

use std::io::{IsTerminal, Write};

use serde::Serialize;
use tabled::builder::Builder;
use tabled::settings::{object::Columns, Padding, Style};

use crate::error::{Error, Result};

/// `-o`: how results are printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OutputFormat {
    #[default]
    Table,
    Wide,
    Json,
    Yaml,
}

/// A table as kubectl prints it: upper-case headers, columns separated by three spaces, no borders.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Table {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: vec![],
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    pub fn render(&self, no_headers: bool) -> String {
        let mut b = Builder::default();
        if !no_headers {
            b.push_record(self.headers.clone());
        }
        for r in &self.rows {
            b.push_record(r.clone());
        }
        let mut t = b.build();
        let cols = self.headers.len();
        t.with(Style::empty()).with(Padding::new(0, 3, 0, 0));
        if cols > 0 {
            t.modify(Columns::new(cols - 1..cols), Padding::new(0, 0, 0, 0));
        }
        let mut s = t.to_string();
        // tabled pads the last column of shorter cells; kubectl has no trailing spaces.
        s = s.lines().map(str::trim_end).collect::<Vec<_>>().join("\n");
        s.push('\n');
        s
    }
}

/// Writes to stdout, turning a closed pipe (`| head`) into a quiet exit rather than a panic.
pub fn print(s: &str) -> Result<()> {
    print_bytes(s.as_bytes())
}

/// [`print`] for bytes that need not be UTF-8 (generated scripts are passed through untouched).
pub fn print_bytes(b: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(b).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::new(format!("cannot write to stdout: {e}"))),
    }
}

/// JSON or YAML rendering of a report; `None` for table formats.
pub fn structured<T: Serialize>(value: &T, format: OutputFormat) -> Result<Option<String>> {
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
pub fn color_enabled() -> bool {
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

/// Colours a state word for tables: green settled, yellow needs action, red broken.
pub fn paint_state(state: &str, color: bool) -> String {
    use owo_colors::OwoColorize;
    if !color {
        return state.to_string();
    }
    match state.split(':').next().unwrap_or(state) {
        "pinned" | "unchanged" | "ok" | "enabled" | "restored" => state.green().to_string(),
        "tag-only" | "new" | "would-pin" | "would-unpin" | "pin" | "unpin" | "not-enabled" => {
            state.yellow().to_string()
        }
        _ => state.red().to_string(),
    }
}

/// A progress bar on stderr when it is a terminal; hidden (free) otherwise.
pub fn progress(len: u64, message: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    let style =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta})")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    pb.set_style(style);
    pb.set_message(message.to_string());
    pb
}

/// `sha256:0123456789ab` — enough to tell digests apart in a table; wide/json show them whole.
pub fn short_digest(d: &str) -> String {
    match d.split_once(':') {
        Some((alg, hex)) if hex.len() > 12 => format!("{alg}:{}", &hex[..12]),
        _ => d.to_string(),
    }
}

/// A short name for a manifest media type.
pub fn media_type_short(mt: &str) -> &str {
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
    fn table_looks_like_kubectl() {
        let mut t = Table::new(["NAME", "STATUS"]);
        t.push(vec!["a-long-name".into(), "pinned".into()]);
        t.push(vec!["b".into(), "tag-only".into()]);
        assert_eq!(
            t.render(false),
            "NAME          STATUS\na-long-name   pinned\nb             tag-only\n"
        );
        assert_eq!(
            t.render(true),
            "a-long-name   pinned\nb             tag-only\n"
        );
    }

    #[test]
    fn digests_shorten() {
        assert_eq!(
            short_digest(&format!("sha256:{}", "ab".repeat(32))),
            "sha256:abababababab"
        );
        assert_eq!(short_digest("-"), "-");
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
    fn paint_is_plain_without_colour() {
        assert_eq!(paint_state("drifted", false), "drifted");
        assert!(paint_state("drifted", true).contains("\u{1b}["));
    }
}
