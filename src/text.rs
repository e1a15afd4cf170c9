//! Untrusted text on its way to a terminal. Names from a model's
//! `config.json`, archive member names, HDF5 dataset paths and `.npz` keys
//! may hold control characters; printed raw, `\x1b[2J` clears the screen and
//! `\x1b]0;...\x07` sets the window title. Every human-readable line the
//! program prints goes through [`sanitize`] or [`sanitize_text`], which show
//! such characters escaped (`\u{1b}`) instead. JSON output is escaped by
//! serde and not touched.

use std::borrow::Cow;

/// Whether `c` must not reach a terminal raw: C0 controls, DEL, C1 controls,
/// and the bidirectional overrides and isolates that reorder what follows.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn escape(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| is_unsafe(c) && !(keep_newlines && c == '\n');
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if !unsafe_char(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

/// One line of untrusted text, safe to print: every control character,
/// newlines included, is shown escaped (`\u{1b}`, `\n`).
pub fn sanitize(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// A block of lines the program laid out (a summary, a table), safe to
/// print: as [`sanitize`], but its own newlines are kept.
pub fn sanitize_text(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_keeps_plain_text() {
        assert!(matches!(sanitize("dense_1 (Dense) ≥ é"), Cow::Borrowed(_)));
        assert_eq!(
            sanitize("a\u{1b}[2J\u{1b}]0;title\u{7}b"),
            "a\\u{1b}[2J\\u{1b}]0;title\\u{7}b"
        );
        assert_eq!(
            sanitize("x\ny\t\u{7f}\u{9b}\u{202e}"),
            "x\\ny\\t\\u{7f}\\u{9b}\\u{202e}"
        );
        assert_eq!(sanitize_text("a\nb\u{1b}\n"), "a\nb\\u{1b}\n");
    }
}
