//! Text that came from a registry (error bodies, media types, platform names, library error
//! chains that quote a URL) made safe for a terminal and a log line.

/// Control characters (escape sequences, bells, newlines, C1 controls) removed, whitespace runs
/// kept as one space, cut to `max` characters (char-safe: never splits a UTF-8 sequence).
pub(crate) fn clean(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    let mut n = 0;
    let mut last_space = false;
    for c in s.chars() {
        let c = if c.is_whitespace() { ' ' } else { c };
        if c.is_control() || (c == ' ' && last_space) {
            continue;
        }
        if n == max {
            out.push('…');
            break;
        }
        last_space = c == ' ';
        out.push(c);
        n += 1;
    }
    out.trim().to_string()
}

/// A URL without its userinfo and query string (and fragment), for logs and errors: a token
/// realm or a redirect target may carry a signature or a password there.
pub(crate) fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let out = match scheme {
        Some(s) => format!("{s}://{authority}{path}"),
        None => format!("{authority}{path}"),
    };
    clean(&out, 300)
}

/// Every `scheme://...` URL inside a longer message (reqwest's errors quote the request URL)
/// redacted with [`redact_url`], and the whole message cleaned.
pub(crate) fn redact_urls_in(msg: &str) -> String {
    let mut out = String::new();
    let mut rest = msg;
    while let Some(i) = rest.find("://") {
        let start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.'))
            .map_or(0, |j| j + 1);
        let end = rest[i..]
            .find(|c: char| c.is_whitespace() || c == ')' || c == '"' || c == '\'' || c == '>')
            .map_or(rest.len(), |j| i + j);
        out.push_str(&rest[..start]);
        out.push_str(&redact_url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    clean(&out, 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_drops_controls_and_cuts_on_char_boundaries() {
        assert_eq!(clean("a\u{1b}[2Jb\u{7}\u{9b}c", 50), "a[2Jbc");
        assert_eq!(clean("line1\nline2\t\tx", 50), "line1 line2 x");
        assert_eq!(clean(&"é".repeat(10), 3), "ééé…");
        assert_eq!(clean("", 3), "");
    }

    #[test]
    fn urls_lose_userinfo_and_query() {
        assert_eq!(
            redact_url("https://user:pw@auth.example:8443/token?scope=x&sig=secret#f"),
            "https://auth.example:8443/token"
        );
        assert_eq!(redact_url("http://h/p"), "http://h/p");
        assert_eq!(
            redact_urls_in("error sending request for url (https://u:p@h/t?sig=s): refused"),
            "error sending request for url (https://h/t): refused"
        );
        assert_eq!(redact_urls_in("no url here"), "no url here");
    }
}
