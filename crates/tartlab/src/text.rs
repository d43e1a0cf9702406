//! Text shown to people: the tail of a log or of a command's output, quoted in a message, and
//! text from a guest made safe for a terminal.

use std::borrow::Cow;

/// The last `n` non-empty lines of a text, each indented for an error message and made
/// printable (the text may come from a guest).
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("    | {}", printable(l)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// At most `width` characters of a line, with `…` when it was longer.
pub fn cut(line: &str, width: usize) -> String {
    match line.char_indices().nth(width) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line.to_string(),
    }
}

/// The text with every control character other than newline and tab written as an escape
/// (`\x1b`, `\x00`, `\u{9b}`), so that what a guest printed cannot move the cursor, retitle
/// the window, clear the screen or hide lines on the terminal that shows it.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut safe = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !needs_escape(c) {
            safe.push(c);
        } else if (c as u32) < 0x100 {
            safe.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            safe.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    Cow::Owned(safe)
}

fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        // Bidirectional overrides and isolates reorder what a line seems to say.
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Bytes from a guest as printable text (invalid UTF-8 shown as U+FFFD).
pub fn printable_bytes(bytes: &[u8]) -> String {
    printable(&String::from_utf8_lossy(bytes)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_keeps_newlines_tabs_and_other_text() {
        let hostile = "ok\ttab\n\x1b]0;pwned\x07\x1b[2J\x00\r\u{9b}31m\u{202e}evil é";
        assert_eq!(
            printable(hostile),
            "ok\ttab\n\\x1b]0;pwned\\x07\\x1b[2J\\x00\\x0d\\x9b31m\\u{202e}evil é"
        );
        assert!(matches!(printable("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn last_lines_are_printable() {
        assert_eq!(
            last_lines("a\n\nb\x1b[2J\nc", 2),
            "    | b\\x1b[2J\n    | c"
        );
    }

    #[test]
    fn cut_counts_characters_not_bytes() {
        assert_eq!(cut("ééé", 2), "éé…");
        assert_eq!(cut("ab", 2), "ab");
    }
}
