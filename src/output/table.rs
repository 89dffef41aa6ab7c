//! The shared table printer: kubectl's layout, and rows that fit the terminal.
//!
//! Every table of every command goes through [`Table`], so each gets the same habits: the layout
//! of kubectl's printer (upper-case headers, three spaces between columns, no borders, no trailing
//! spaces) and, when stdout is a terminal narrower than a row, cells shortened in the middle
//! (`deployment/nebu…-scheduler`) instead of lines wrapped. A pipe or a file always gets every
//! cell whole, so scripts never see a shortened value. Cells are made terminal-safe as they are
//! pushed ([`super::safe_cell`]: control characters removed, only `paint`'s own colour kept), so a
//! newline or an escape sequence from a registry or an annotation can neither break the rows nor
//! drive the terminal; colour takes no width.
//!
//! `tabled` lays the table out and prints it (borderless style, the gap as right padding, the
//! column widths), measures cells (its `ansi` feature: colour is zero width) and picks the column
//! to narrow next (its `PriorityMax` peaker). What stays here is what tabled does not do: it
//! truncates at the end of a cell and knows no per-column floor, so the fitting loop gives the
//! peaker our floors (header width, keep-whole columns) and the cells are cut in the middle
//! before tabled lays them out; and it passes control characters through, so the layout never
//! sees one (a last guard makes any that reach it a space).

use std::io::IsTerminal;

use tabled::builder::Builder;
use tabled::grid::util::string::{get_char_width, get_line_width};
use tabled::settings::object::Columns;
use tabled::settings::peaker::{Peaker, PriorityMax};
use tabled::settings::{Padding, Style, Width};

/// Columns are separated by three spaces, as kubectl's printer does.
const GAP: usize = 3;
/// A shortened column keeps at least its header's width, and at least this many columns.
const MIN_SHORTENED: usize = 8;

/// A table as kubectl prints it: upper-case headers, columns separated by three spaces, no
/// borders, no trailing spaces.
///
/// On a terminal narrower than the table ([`Table::render`]), the widest cells are shortened in
/// the middle (`deployment/nebu…-scheduler`) rather than wrapped, until the rows fit or every
/// column is down to its header's width; columns marked [`Table::keep_whole`] (digests, states:
/// half of one would mislead) are never shortened. A pipe or a file gets every cell whole.
pub(crate) struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    keep: Vec<bool>,
}

impl Table {
    pub(crate) fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        let headers: Vec<String> = headers.into_iter().map(Into::into).collect();
        Table {
            keep: vec![false; headers.len()],
            headers,
            rows: vec![],
        }
    }

    /// Marks the columns with these headers as never shortened to fit a terminal.
    pub(crate) fn keep_whole(mut self, headers: &[&str]) -> Self {
        for (h, keep) in self.headers.iter().zip(self.keep.iter_mut()) {
            if headers.contains(&h.as_str()) {
                *keep = true;
            }
        }
        self
    }

    /// Cells are made terminal-safe here, for every table, by the one cell sanitiser
    /// ([`super::safe_cell`]: control characters removed, only our own colours kept).
    pub(crate) fn push(&mut self, row: Vec<String>) {
        self.rows.push(
            row.into_iter()
                .map(|c| super::safe_cell(&c).into_owned())
                .collect(),
        );
    }

    /// Puts a column in front of the others (`CONTEXT` when a command runs across contexts):
    /// `cells` holds one cell per row pushed so far, in order; missing cells are empty. Never
    /// shortened, like the [`Table::keep_whole`] columns: it says which cluster a row is about.
    pub(crate) fn prepend_column(mut self, header: &str, cells: Vec<String>) -> Self {
        self.headers.insert(0, header.to_string());
        self.keep.insert(0, true);
        let mut cells = cells.into_iter();
        for row in &mut self.rows {
            let c = cells.next().unwrap_or_default();
            row.insert(0, super::safe_cell(&c).into_owned());
        }
        self
    }

    /// The table for stdout: fitted to the terminal's width when stdout is one (see
    /// [`stdout_width`]); whole when stdout is a pipe or a file.
    pub(crate) fn render(&self, no_headers: bool) -> String {
        self.render_within(no_headers, stdout_width())
    }

    /// The table with its rows fitted into `max_width` columns when given (see [`Table`]).
    pub(crate) fn render_within(&self, no_headers: bool, max_width: Option<usize>) -> String {
        let mut lines: Vec<Vec<String>> = vec![];
        if !no_headers {
            lines.push(self.headers.iter().map(|h| sanitize(h)).collect());
        }
        lines.extend(
            self.rows
                .iter()
                .map(|r| r.iter().map(|c| sanitize(c)).collect()),
        );
        let widths = self.widths(&lines, max_width);
        let cols = widths.len();
        if cols == 0 {
            // Nothing for tabled to lay out: one empty line per row (at least one line).
            return "\n".repeat(lines.len().max(1));
        }
        let mut b = Builder::with_capacity(lines.len(), cols);
        for l in &lines {
            b.push_record(
                (0..cols).map(|i| shorten_middle(l.get(i).map_or("", String::as_str), widths[i])),
            );
        }
        let mut t = b.build();
        t.with(Style::empty())
            .with(Padding::new(0, GAP, 0, 0))
            .modify(Columns::new(cols - 1..cols), Padding::zero())
            // The widths decided here (a cut wide character can leave a cell a column short),
            // each with its gap but the last.
            .with(Width::list(widths.iter().enumerate().map(|(i, w)| {
                if i + 1 < cols {
                    w + GAP
                } else {
                    *w
                }
            })));
        let mut out = String::new();
        // One line per row, a row of empty cells too (`lines()` would drop a last empty one);
        // tabled pads every cell to its column, the last too; kubectl has no trailing spaces.
        for line in t.to_string().split('\n') {
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// Each column's width: its widest cell, then (given a maximum) shortened to fit. A column
    /// is never shortened below its header (printed or not, so `--no-headers` rows look the same).
    fn widths(&self, lines: &[Vec<String>], max_width: Option<usize>) -> Vec<usize> {
        let cols = lines.iter().map(Vec::len).max().unwrap_or(0);
        let mut natural = vec![0; cols];
        for l in lines {
            for (i, cell) in l.iter().enumerate() {
                natural[i] = natural[i].max(display_width(cell));
            }
        }
        let Some(max) = max_width else {
            return natural;
        };
        let floor: Vec<usize> = (0..cols)
            .map(|i| {
                let header = self.headers.get(i).map_or(0, |h| display_width(h));
                natural[i].min(header.max(MIN_SHORTENED))
            })
            .collect();
        let keep: Vec<bool> = (0..cols)
            .map(|i| self.keep.get(i).copied().unwrap_or(false))
            .collect();
        fit(&natural, &floor, &keep, max)
    }
}

/// The width to fit tables into: `None` (never shorten) unless stdout is a terminal. On a
/// terminal, `COLUMNS` when it is a positive number (as clap, Python's shutil and many tools
/// read it: a user can ask for a width), else the terminal's own width.
pub(crate) fn stdout_width() -> Option<usize> {
    width_from(
        std::io::stdout().is_terminal(),
        std::env::var("COLUMNS").ok().as_deref(),
        || terminal_size::terminal_size_of(std::io::stdout()).map(|(w, _)| usize::from(w.0)),
    )
}

/// The decision behind [`stdout_width`], apart from the process state so it can be tested.
fn width_from(
    is_terminal: bool,
    columns: Option<&str>,
    terminal: impl FnOnce() -> Option<usize>,
) -> Option<usize> {
    if !is_terminal {
        return None;
    }
    columns
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0)
        .or_else(terminal)
        .filter(|&c| c > 0)
}

/// Column widths that fit `max`: the widest column that may shrink loses one column at a time,
/// never below its floor; keep-whole columns keep their width. When even the floors do not fit,
/// the floors are returned (the terminal wraps what is left).
///
/// tabled's `PriorityMax` peaker picks the column (the widest above its minimum, the leftmost of
/// equals); the loop is ours because tabled's own `Width::truncate` gives the peaker only the
/// padding as minimum (no header floor, no keep-whole column) and then cuts cells at the end.
fn fit(natural: &[usize], floor: &[usize], keep: &[bool], max: usize) -> Vec<usize> {
    let mut w = natural.to_vec();
    // A keep-whole column's minimum is its own width: the peaker never picks it.
    let mins: Vec<usize> = (0..w.len())
        .map(|i| if keep[i] { natural[i] } else { floor[i] })
        .collect();
    let gaps = GAP * w.len().saturating_sub(1);
    let mut total = w.iter().sum::<usize>() + gaps;
    let mut peaker = PriorityMax::left();
    while total > max {
        let Some(i) = peaker.peak(&mins, &w) else {
            break;
        };
        w[i] -= 1;
        total -= 1;
    }
    w
}

/// The terminal width of `s` as tabled measures it: colour takes none, wide characters two.
/// Control characters other than colour count as the spaces [`sanitize`] makes of them.
fn display_width(s: &str) -> usize {
    get_line_width(&sanitize(s))
}

/// The length in bytes of the colour sequence (SGR: `ESC [ digits;... m`) at the start of `s`.
fn colour_at(s: &str) -> Option<usize> {
    let params = s.strip_prefix("\u{1b}[")?;
    let n = params
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b';')
        .count();
    (params.as_bytes().get(n) == Some(&b'm')).then_some(2 + n + 1)
}

/// A cell as pieces: colour sequences, and characters with every other control character (a
/// newline would break the rows, any other escape could drive the terminal) made a space.
enum Piece<'a> {
    Colour(&'a str),
    Char(char),
}

fn pieces(s: &str) -> impl Iterator<Item = Piece<'_>> {
    let mut rest = s;
    std::iter::from_fn(move || {
        if let Some(n) = colour_at(rest) {
            let (seq, tail) = rest.split_at(n);
            rest = tail;
            return Some(Piece::Colour(seq));
        }
        let c = rest.chars().next()?;
        rest = &rest[c.len_utf8()..];
        Some(Piece::Char(if c.is_control() { ' ' } else { c }))
    })
}

/// `s` without its colour: (leading colour sequences, visible text, trailing colour sequences).
/// Colour inside the text is dropped.
fn split_escapes(s: &str) -> (String, String, String) {
    let mut lead = String::new();
    let mut text = String::new();
    let mut trail = String::new();
    for p in pieces(s) {
        match p {
            Piece::Colour(seq) if text.is_empty() => lead.push_str(seq),
            Piece::Colour(seq) => trail.push_str(seq),
            Piece::Char(c) => {
                // colour in the middle is not colour around the cell: dropped
                trail.clear();
                text.push(c);
            }
        }
    }
    (lead, text, trail)
}

/// `s` with its colour kept where it is and every other control character made a space.
fn sanitize(s: &str) -> String {
    pieces(s)
        .map(|p| match p {
            Piece::Colour(seq) => seq.to_string(),
            Piece::Char(c) => c.to_string(),
        })
        .collect()
}

/// `cell` shortened to `width` terminal columns by replacing its middle with `…`; unchanged if it
/// fits (but for control characters, see [`sanitize`]). Counts characters by their terminal
/// width, so it never splits one (no panic on any input), and keeps a cell's colour.
fn shorten_middle(cell: &str, width: usize) -> String {
    let cell = sanitize(cell);
    if display_width(&cell) <= width {
        return cell;
    }
    let (lead, text, trail) = split_escapes(&cell);
    if width == 0 {
        return String::new();
    }
    let room = width - 1;
    let (head_room, tail_room) = (room - room / 2, room / 2);
    let mut head = String::new();
    let mut used = 0;
    for c in text.chars() {
        let cw = get_char_width(c);
        if used + cw > head_room {
            break;
        }
        head.push(c);
        used += cw;
    }
    let mut tail = vec![];
    let mut used = 0;
    for c in text.chars().rev() {
        let cw = get_char_width(c);
        if used + cw > tail_room {
            break;
        }
        tail.push(c);
        used += cw;
    }
    let tail: String = tail.into_iter().rev().collect();
    format!("{lead}{head}…{tail}{trail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    // tabled's re-export of unicode-width's `UnicodeWidthStr::width` (colour not stripped).
    use tabled::grid::util::string::get_string_width;

    fn sample() -> Table {
        let mut t = Table::new(["WORKLOAD", "CONTAINER", "DIGEST", "STATUS"])
            .keep_whole(&["DIGEST", "STATUS"]);
        t.push(vec![
            "deployment/nebular-star-4821-scheduler".into(),
            "wait-for-airflow-migrations (init)".into(),
            "sha256:29c9d149f951".into(),
            "running-differs".into(),
        ]);
        t.push(vec![
            "configmap/nebular-star-4821-config".into(),
            "base".into(),
            "-".into(),
            "tag-only".into(),
        ]);
        t
    }

    #[test]
    fn table_looks_like_kubectl() {
        let mut t = Table::new(["NAME", "STATUS"]);
        t.push(vec!["a-long-name".into(), "pinned".into()]);
        t.push(vec!["b".into(), "tag-only".into()]);
        assert_eq!(
            t.render_within(false, None),
            "NAME          STATUS\na-long-name   pinned\nb             tag-only\n"
        );
        assert_eq!(
            t.render_within(true, None),
            "a-long-name   pinned\nb             tag-only\n"
        );
        // Exactly as wide as the terminal: untouched; one column less: shortened.
        assert_eq!(
            t.render_within(false, Some(22)),
            t.render_within(false, None)
        );
        assert_eq!(
            t.render_within(false, Some(21)),
            "NAME         STATUS\na-lon…name   pinned\nb            tag-only\n"
        );
    }

    #[test]
    fn a_narrow_width_shortens_the_widest_cells_in_the_middle() {
        let t = sample();
        let whole = t.render_within(false, None);
        let widest = |s: &str| s.lines().map(|l| l.chars().count()).max().unwrap_or(0);
        assert_eq!(widest(&whole), 38 + 3 + 34 + 3 + 19 + 3 + 15);
        assert!(!whole.contains('…'));
        let s = t.render_within(false, Some(80));
        assert_eq!(widest(&s), 80, "{s}");
        assert_eq!(
            s,
            "WORKLOAD             CONTAINER             DIGEST                STATUS\n\
             deploymen…cheduler   wait-for-…ns (init)   sha256:29c9d149f951   running-differs\n\
             configmap…1-config   base                  -                     tag-only\n"
        );
        // --no-headers: the same rows.
        assert_eq!(
            t.render_within(true, Some(80)),
            s.split_once('\n').unwrap().1
        );
    }

    #[test]
    fn never_below_the_header_nor_into_a_kept_column() {
        let s = sample().render_within(false, Some(10));
        assert!(
            s.starts_with("WORKLOAD   CONTAINER   DIGEST                STATUS\n"),
            "{s}"
        );
        assert!(s.contains("sha256:29c9d149f951   running-differs"), "{s}");
        // Short columns are kept at MIN_SHORTENED, not cut to their header.
        let mut t = Table::new(["A", "B"]);
        t.push(vec!["0123456789abcdef".into(), "x".into()]);
        assert_eq!(t.render_within(true, Some(5)), "0123…def   x\n");
    }

    #[test]
    fn non_ascii_never_panics_and_never_overflows() {
        let cells = [
            "日本語のワークロード名前テスト",
            "e\u{301}e\u{301}e\u{301}e\u{301}e\u{301}e\u{301}e\u{301}e\u{301}e\u{301}",
            "ääääääääääääääääääääää",
            "🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂",
            "a\u{1b}[31mred\u{1b}[39m inside",
        ];
        for cell in cells {
            for w in 0..24 {
                let s = shorten_middle(cell, w);
                assert!(
                    display_width(&s) <= w || s == cell,
                    "{cell:?} in {w}: {s:?}"
                );
            }
        }
        assert_eq!(shorten_middle("日本語のワークロード", 9), "日本…ード");
        let mut t = Table::new(["名前", "X"]);
        t.push(vec!["日本語のワークロード名前テスト".into(), "y".into()]);
        let s = t.render_within(false, Some(20));
        for l in s.lines() {
            assert!(get_string_width(l) <= 20, "{s}");
        }
    }

    #[test]
    fn control_characters_never_reach_the_terminal_and_rows_stay_rows() {
        let mut t = Table::new(["NAME", "MESSAGE"]);
        t.push(vec!["a\nb".into(), "x\u{1b}]0;title\u{7}\ty\r".into()]);
        t.push(vec![
            "c".into(),
            "sha256:0\u{1b}[2J\u{1b}[31mz\u{1b}[0m".into(),
        ]);
        let s = t.render_within(true, None);
        // push() cleans cells (output::safe_cell): every control character goes, and a colour
        // sequence that is not paint's own cell shape loses its ESC, so nothing stays red.
        assert_eq!(s, "ab   x]0;titley\nc    sha256:0[2J[31mz[0m\n", "{s:?}");
        assert_eq!(s.lines().count(), 2);
    }

    #[test]
    fn colour_takes_no_width_and_survives_shortening() {
        use owo_colors::OwoColorize;
        let red = "unresolved: no such host".red().to_string();
        assert_eq!(display_width(&red), 24);
        let s = shorten_middle(&red, 11);
        assert_eq!(display_width(&s), 11);
        assert!(
            s.starts_with("\u{1b}[31m") && s.ends_with("\u{1b}[39m"),
            "{s:?}"
        );
        let mut t = Table::new(["A", "B"]);
        t.push(vec![red.clone(), "x".into()]);
        t.push(vec!["y".into(), "z".into()]);
        assert_eq!(
            t.render_within(true, None),
            format!("{red}   x\ny{}z\n", " ".repeat(24 + 2))
        );
    }

    #[test]
    fn a_prepended_column_leads_every_row_and_is_kept_whole() {
        let mut t = Table::new(["NAME", "STATE"]);
        t.push(vec!["a-very-long-workload-name".into(), "pinned".into()]);
        t.push(vec!["b".into(), "drifted".into()]);
        let t = t.prepend_column("CONTEXT", vec!["prod-eu-cluster".into(), "dev".into()]);
        assert_eq!(
            t.render_within(false, None),
            "CONTEXT           NAME                        STATE\nprod-eu-cluster   a-very-long-workload-name   pinned\ndev               b                           drifted\n"
        );
        let narrow = t.render_within(true, Some(40));
        assert!(narrow.starts_with("prod-eu-cluster   "), "{narrow}");
    }

    #[test]
    fn only_a_terminal_has_a_width() {
        let ioctl = |w| move || Some(w);
        assert_eq!(
            width_from(false, Some("80"), ioctl(100)),
            None,
            "a pipe never"
        );
        assert_eq!(width_from(false, None, ioctl(100)), None);
        assert_eq!(width_from(true, None, ioctl(100)), Some(100));
        assert_eq!(
            width_from(true, Some("80"), ioctl(100)),
            Some(80),
            "COLUMNS wins"
        );
        assert_eq!(width_from(true, Some(" 80 "), || None), Some(80));
        for bad in ["", "0", "-3", "wide", "80x"] {
            assert_eq!(
                width_from(true, Some(bad), ioctl(100)),
                Some(100),
                "{bad:?}"
            );
        }
        assert_eq!(
            width_from(true, None, || None),
            None,
            "a terminal of unknown size"
        );
        assert_eq!(width_from(true, None, ioctl(0)), None);
    }
}
