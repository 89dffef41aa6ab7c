//! The shared table printer: kubectl's layout, and rows that fit the terminal.
//!
//! Every table of every command goes through [`Table`], so each gets the same habits: the layout
//! of kubectl's printer (upper-case headers, three spaces between columns, no borders, no trailing
//! spaces) and, when stdout is a terminal narrower than a row, the least important columns give
//! way first, as each table declares them ([`Table::shorten_digests`], [`Table::drop_first`],
//! [`Table::cut_middle`]), instead of lines wrapped. Every other column is a name a user copies
//! (namespace, release, workload, container, image reference) and is never cut: when those alone
//! do not fit, the line is wider than the terminal rather than a name shortened (issue 23: a
//! 70-column terminal left `deployme…i-server`). A pipe or a file always gets every column and
//! every cell whole, so scripts never see a shortened value. Cells are made terminal-safe as they
//! are pushed ([`super::safe_cell`]: control characters removed, only `paint`'s own colour kept),
//! so a newline or an escape sequence from a registry or an annotation can neither break the rows
//! nor drive the terminal; colour takes no width.
//!
//! `tabled` lays the table out and prints it (borderless style, the gap as right padding, the
//! column widths), measures cells (its `ansi` feature: colour is zero width) and picks the column
//! to narrow next (its `PriorityMax` peaker). What stays here is what tabled does not do: which
//! columns may give way and how (a digest to its short form, a detail column left out, free text
//! cut in the middle, with a per-column floor), and it passes control characters through, so the
//! layout never sees one (a last guard makes any that reach it a space).

use std::io::IsTerminal;

use tabled::builder::Builder;
use tabled::grid::util::string::{get_char_width, get_line_width};
use tabled::settings::object::Columns;
use tabled::settings::peaker::{Peaker, PriorityMax};
use tabled::settings::{Padding, Style, Width};

/// Columns are separated by three spaces, as kubectl's printer does.
const GAP: usize = 3;
/// A column cut in the middle keeps at least its header's width, and at least this many columns.
const MIN_SHORTENED: usize = 8;

/// How a column may give way on a narrow terminal. By default it does not: it is whole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Give {
    /// Full digests become their short form (`sha256:` and 12 hex digits, as the default tables
    /// print them): a prefix of the digest, never a middle cut that would look like another one.
    digest: bool,
    /// Left out, the lowest rank first, when the rest still does not fit.
    drop: Option<usize>,
    /// Free text (a reason, a sentence): cut in the middle, down to its floor.
    cut: bool,
}

/// A table as kubectl prints it: upper-case headers, columns separated by three spaces, no
/// borders, no trailing spaces.
///
/// On a terminal narrower than the table ([`Table::render`]), columns give way in this order
/// until the rows fit: digest columns take their short form, then detail columns are left out
/// (in the order the table gave), with the free-text columns cut in the middle (never below their
/// header's width) whenever that is enough. Every other column is kept whole, even when the line
/// is then wider than the terminal. A pipe or a file gets every column and every cell whole.
pub(crate) struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    give: Vec<Give>,
}

/// What a narrow terminal left of a table: the rendered text, and the headers of the columns
/// left out to fit.
pub(crate) struct Rendered {
    pub(crate) text: String,
    pub(crate) dropped: Vec<String>,
}

/// The decided layout: which columns are printed (and how wide), which digests are short.
struct Layout {
    shown: Vec<usize>,
    short: Vec<bool>,
    widths: Vec<usize>,
}

impl Table {
    pub(crate) fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        let headers: Vec<String> = headers.into_iter().map(Into::into).collect();
        Table {
            give: vec![Give::default(); headers.len()],
            headers,
            rows: vec![],
        }
    }

    fn mark(mut self, headers: &[&str], f: impl Fn(&mut Give, usize)) -> Self {
        for (i, h) in headers.iter().enumerate() {
            if let Some(c) = self.headers.iter().position(|x| x == h) {
                f(&mut self.give[c], i);
            }
        }
        self
    }

    /// Marks the columns with these headers as never shortened to fit a terminal (what every
    /// column is unless declared otherwise: the call says so where it matters).
    pub(crate) fn keep_whole(self, headers: &[&str]) -> Self {
        self.mark(headers, |g, _| *g = Give::default())
    }

    /// Columns of full digests: on a narrow terminal, first of all, they take the short form.
    pub(crate) fn shorten_digests(self, headers: &[&str]) -> Self {
        self.mark(headers, |g, _| g.digest = true)
    }

    /// Detail columns a narrow terminal may go without, the first given left out first.
    pub(crate) fn drop_first(self, headers: &[&str]) -> Self {
        self.mark(headers, |g, rank| g.drop = Some(rank))
    }

    /// Free-text columns (reasons, sentences) a narrow terminal may cut in the middle.
    pub(crate) fn cut_middle(self, headers: &[&str]) -> Self {
        self.mark(headers, |g, _| g.cut = true)
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
    /// shortened: it says which cluster a row is about.
    pub(crate) fn prepend_column(mut self, header: &str, cells: Vec<String>) -> Self {
        self.headers.insert(0, header.to_string());
        self.give.insert(0, Give::default());
        let mut cells = cells.into_iter();
        for row in &mut self.rows {
            let c = cells.next().unwrap_or_default();
            row.insert(0, super::safe_cell(&c).into_owned());
        }
        self
    }

    /// The table for stdout: fitted to the terminal's width when stdout is one (see
    /// [`stdout_width`]); whole when stdout is a pipe or a file. Columns left out to fit are
    /// named on stderr, with how to see them.
    pub(crate) fn render(&self, no_headers: bool) -> String {
        let width = stdout_width();
        let r = self.render_fitted(no_headers, width);
        if let (false, Some(w)) = (r.dropped.is_empty(), width) {
            eprintln!(
                "note: {} left out to fit {w} columns (a wider terminal, or a pipe, shows every column)",
                r.dropped.join(", ")
            );
        }
        r.text
    }

    /// The table with its rows fitted into `max_width` columns when given (see [`Table`]).
    #[cfg(test)]
    pub(crate) fn render_within(&self, no_headers: bool, max_width: Option<usize>) -> String {
        self.render_fitted(no_headers, max_width).text
    }

    /// [`Table::render_within`], and which columns were left out.
    pub(crate) fn render_fitted(&self, no_headers: bool, max_width: Option<usize>) -> Rendered {
        let cols = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.headers.len()])
            .max()
            .unwrap_or(0);
        let mut lines: Vec<Vec<String>> = vec![];
        if !no_headers {
            lines.push(self.headers.iter().map(|h| sanitize(h)).collect());
        }
        lines.extend(
            self.rows
                .iter()
                .map(|r| r.iter().map(|c| sanitize(c)).collect()),
        );
        for l in &mut lines {
            l.resize(cols, String::new());
        }
        let layout = self.layout(&mut lines, cols, max_width);
        let dropped = (0..cols)
            .filter(|i| !layout.shown.contains(i))
            .filter_map(|i| self.headers.get(i).cloned())
            .collect();
        Rendered {
            text: lay_out(&lines, &layout),
            dropped,
        }
    }

    /// Decides the layout, and shortens the digest cells it gives their short form.
    fn layout(&self, lines: &mut [Vec<String>], cols: usize, max: Option<usize>) -> Layout {
        let give = |i: usize| self.give.get(i).copied().unwrap_or_default();
        let header = |i: usize| self.headers.get(i).map_or(0, |h| display_width(h));
        let mut layout = Layout {
            shown: (0..cols).collect(),
            short: vec![false; cols],
            widths: natural(lines, cols),
        };
        let Some(max) = max else {
            return layout;
        };
        let whole = lines.to_vec();
        // The narrowest the shown columns can be without cutting a name: free text at its floor.
        let floor = |w: &[usize], i: usize| {
            if give(i).cut {
                w[i].min(header(i).max(MIN_SHORTENED))
            } else {
                w[i]
            }
        };
        let least = |l: &Layout| {
            l.shown.iter().map(|&i| floor(&l.widths, i)).sum::<usize>()
                + GAP * l.shown.len().saturating_sub(1)
        };
        // 1. digests take their short form, one column at a time from the right.
        for i in (0..cols).rev().filter(|&i| give(i).digest) {
            if least(&layout) <= max {
                break;
            }
            layout.short[i] = true;
            let first = usize::from(lines.len() > self.rows.len());
            for l in lines.iter_mut().skip(first) {
                l[i] = crate::core::short_digest(&l[i]);
            }
            layout.widths = natural(lines, cols);
        }
        // 2. detail columns are left out, the lowest rank first.
        let mut droppable: Vec<(usize, usize)> = (0..cols)
            .filter_map(|i| give(i).drop.map(|rank| (rank, i)))
            .collect();
        droppable.sort_unstable();
        for (_, i) in droppable {
            if least(&layout) <= max {
                break;
            }
            layout.shown.retain(|&c| c != i);
        }
        // Nothing gives way for nothing: when the names alone are wider than the terminal, the
        // whole table is printed, every column as a pipe gets it (the terminal wraps the lines).
        if least(&layout) > max {
            lines.clone_from_slice(&whole);
            return Layout {
                shown: (0..cols).collect(),
                short: vec![false; cols],
                widths: natural(lines, cols),
            };
        }
        // 3. free text is cut in the middle, the widest first, down to its floor.
        let shown_natural: Vec<usize> = layout.shown.iter().map(|&i| layout.widths[i]).collect();
        let mins: Vec<usize> = layout
            .shown
            .iter()
            .map(|&i| floor(&layout.widths, i))
            .collect();
        let fitted = fit(&shown_natural, &mins, max);
        for (k, &i) in layout.shown.iter().enumerate() {
            layout.widths[i] = fitted[k];
        }
        layout
    }
}

/// Each column's widest cell.
fn natural(lines: &[Vec<String>], cols: usize) -> Vec<usize> {
    let mut w = vec![0; cols];
    for l in lines {
        for (i, cell) in l.iter().enumerate() {
            w[i] = w[i].max(display_width(cell));
        }
    }
    w
}

/// The shown columns of `lines` at the layout's widths, as kubectl prints a table.
fn lay_out(lines: &[Vec<String>], layout: &Layout) -> String {
    let cols = layout.shown.len();
    if cols == 0 {
        // Nothing for tabled to lay out: one empty line per row (at least one line).
        return "\n".repeat(lines.len().max(1));
    }
    let widths: Vec<usize> = layout.shown.iter().map(|&i| layout.widths[i]).collect();
    let mut b = Builder::with_capacity(lines.len(), cols);
    for l in lines {
        b.push_record(
            layout
                .shown
                .iter()
                .zip(&widths)
                .map(|(&i, &w)| shorten_middle(&l[i], w)),
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

/// Column widths that fit `max`: the widest column above its minimum loses one column at a
/// time, never below its minimum (a column that may not be cut has its own width as minimum).
/// When even the minimums do not fit, the minimums are returned (the line is wider than the
/// terminal).
///
/// tabled's `PriorityMax` peaker picks the column (the widest above its minimum, the leftmost of
/// equals); the loop is ours because tabled's own `Width::truncate` gives the peaker only the
/// padding as minimum and then cuts cells at the end.
fn fit(natural: &[usize], mins: &[usize], max: usize) -> Vec<usize> {
    let mut w = natural.to_vec();
    let gaps = GAP * w.len().saturating_sub(1);
    let mut total = w.iter().sum::<usize>() + gaps;
    let mut peaker = PriorityMax::left();
    while total > max {
        let Some(i) = peaker.peak(mins, &w) else {
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
        let mut t = Table::new(["WORKLOAD", "CONTAINER", "DIGEST", "STATUS", "MESSAGE"])
            .cut_middle(&["MESSAGE"]);
        t.push(vec![
            "deployment/nebular-star-4821-scheduler".into(),
            "wait-for-airflow-migrations (init)".into(),
            "sha256:29c9d149f951".into(),
            "running-differs".into(),
            "the pods run another build than the tag points to".into(),
        ]);
        t.push(vec![
            "configmap/nebular-star-4821-config".into(),
            "base".into(),
            "-".into(),
            "tag-only".into(),
            "-".into(),
        ]);
        t
    }

    fn widest(s: &str) -> usize {
        s.lines().map(|l| l.chars().count()).max().unwrap_or(0)
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
        // Exactly as wide as the terminal: untouched; one column less: a name is never cut, the
        // line is a column wider than the terminal.
        assert_eq!(
            t.render_within(false, Some(22)),
            t.render_within(false, None)
        );
        assert_eq!(
            t.render_within(false, Some(21)),
            t.render_within(false, None)
        );
        // Declared free text is cut in the middle.
        let t = t.cut_middle(&["NAME"]);
        assert_eq!(
            t.render_within(false, Some(21)),
            "NAME         STATUS\na-lon…name   pinned\nb            tag-only\n"
        );
    }

    /// Issue 23: on a 70-column terminal, middle truncation left `deployme…i-server` and
    /// `wait-for…grations`. Names stay whole; free text gives way first, and when the names alone
    /// do not fit, the line is wider than the terminal.
    #[test]
    fn a_narrow_width_cuts_free_text_never_a_name() {
        let t = sample();
        let whole = t.render_within(false, None);
        assert_eq!(widest(&whole), 38 + 3 + 34 + 3 + 19 + 3 + 15 + 3 + 49);
        let s = t.render_within(false, Some(130));
        assert_eq!(widest(&s), 130, "{s}");
        assert_eq!(
            s,
            "WORKLOAD                                 CONTAINER                            DIGEST                STATUS            MESSAGE\n\
             deployment/nebular-star-4821-scheduler   wait-for-airflow-migrations (init)   sha256:29c9d149f951   running-differs   the po…ts to\n\
             configmap/nebular-star-4821-config       base                                 -                     tag-only          -\n"
        );
        // --no-headers: the same rows.
        assert_eq!(
            t.render_within(true, Some(130)),
            s.split_once('\n').unwrap().1
        );
        // 70 columns: the names do not fit even with the message at its floor; nothing is cut,
        // nothing gives way for nothing: the whole table, as a pipe gets it.
        assert_eq!(t.render_within(false, Some(70)), whole);
        // Just enough room with the message at its floor: cut to it.
        let s = t.render_within(false, Some(38 + 3 + 34 + 3 + 19 + 3 + 15 + 3 + 8));
        assert!(s.contains("   running-differs   the … to\n"), "{s}");
        assert_eq!(s.matches('…').count(), 1, "only the message: {s}");
    }

    /// show's default columns at 70 columns (issue 23): the pinned digest, the declared detail,
    /// is left out before any name is cut; a pipe keeps it.
    #[test]
    fn detail_columns_are_left_out_before_a_name_is_cut() {
        let show = |workload: &str| {
            let mut t = Table::new(["WORKLOAD", "CONTAINER", "TAG", "SPEC DIGEST", "STATUS"])
                .drop_first(&["SPEC DIGEST"]);
            t.push(vec![
                workload.into(),
                "wait-for-airflow-migrations".into(),
                "12.4.0".into(),
                "sha256:29c9d149f951".into(),
                "pinned".into(),
            ]);
            t
        };
        let t = show("deployment/orbit-7-api");
        let r = t.render_fitted(false, Some(70));
        assert_eq!(r.dropped, ["SPEC DIGEST"]);
        assert_eq!(
            r.text,
            "WORKLOAD                 CONTAINER                     TAG      STATUS\n\
             deployment/orbit-7-api   wait-for-airflow-migrations   12.4.0   pinned\n"
        );
        assert_eq!(widest(&r.text), 70);
        let whole = t.render_fitted(false, None);
        assert!(whole.dropped.is_empty() && whole.text.contains("sha256:29c9d149f951"));
        // Names too long for 70 columns even without it: nothing cut, nothing left out for
        // nothing; the line is wider than 70.
        let t = show("deployment/nebular-star-4821-api-server");
        let r = t.render_fitted(true, Some(70));
        assert!(r.dropped.is_empty());
        assert_eq!(
            r.text,
            "deployment/nebular-star-4821-api-server   wait-for-airflow-migrations   12.4.0   sha256:29c9d149f951   pinned\n"
        );
        assert_eq!(r.text, t.render_within(true, None));
    }

    /// `-o wide`'s full digests take their short form (a prefix, never a middle cut) before any
    /// detail column is left out; a column is left out only when the short forms do not fit.
    #[test]
    fn digests_take_their_short_form_first() {
        let full = format!("sha256:{}", "0123456789abcdef".repeat(4));
        let mut t = Table::new(["NAME", "DIGEST", "SOURCE"])
            .shorten_digests(&["DIGEST"])
            .drop_first(&["SOURCE"]);
        t.push(vec!["api".into(), full.clone(), "registry.example".into()]);
        t.push(vec!["web".into(), "-".into(), "mirror.example".into()]);
        assert!(t.render_within(true, None).contains(&full));
        let r = t.render_fitted(true, Some(50));
        assert!(r.dropped.is_empty());
        assert_eq!(
            r.text,
            "api   sha256:0123456789ab   registry.example\nweb   -                     mirror.example\n"
        );
        let r = t.render_fitted(true, Some(30));
        assert_eq!(r.dropped, ["SOURCE"]);
        assert_eq!(r.text, "api   sha256:0123456789ab\nweb   -\n");
    }

    #[test]
    fn never_below_the_header_nor_into_a_kept_column() {
        let t = sample();
        let s = t.render_within(false, Some(38 + 3 + 34 + 3 + 19 + 3 + 15 + 3 + 8));
        assert!(
            s.starts_with("WORKLOAD                                 CONTAINER                            DIGEST                STATUS            MESSAGE\n"),
            "{s}"
        );
        assert!(
            s.contains("sha256:29c9d149f951   running-differs   the … to"),
            "{s}"
        );
        assert_eq!(
            t.render_within(false, Some(10)),
            t.render_within(false, None)
        );
        // Short columns are kept at MIN_SHORTENED, not cut to their header.
        let mut t = Table::new(["A", "B"]).cut_middle(&["A"]);
        t.push(vec!["0123456789abcdef".into(), "x".into()]);
        assert_eq!(t.render_within(true, Some(12)), "0123…def   x\n");
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
        let mut t = Table::new(["名前", "X"]).cut_middle(&["名前"]);
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
