//! Text shown to people: the tail of a log or of a command's output, quoted in a message, and
//! text from a guest made safe for a terminal. Every piece of guest text that reaches a
//! message, a hint, an event or the terminal goes through `printable`, with a bound.

use std::borrow::Cow;

/// The most characters of one line of guest output a message quotes.
pub const QUOTED_LINE: usize = 500;
/// The most characters of a name or a word a guest gave (a module, a path) in a message.
pub const QUOTED_NAME: usize = 100;
/// The most characters of a whole message or hint: a backstop, far above what one needs.
pub const MESSAGE: usize = 16 * 1024;

/// The last `n` non-empty lines of a text, each indented for an error message, made
/// printable and cut at `QUOTED_LINE` characters (the text may come from a guest).
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("    | {}", printable(l, QUOTED_LINE)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A count and its noun, the noun plural unless the count is one: `1 node`, `2 nodes`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// At most `width` characters of a line, with `…` when it was longer.
pub fn cut(line: &str, width: usize) -> String {
    match line.char_indices().nth(width) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line.to_string(),
    }
}

/// At most `max` characters of the text (then `…` and how many more there were), with every
/// control character other than newline and tab written as an escape (`\x1b`, `\x00`,
/// `\u{9b}`), so that what a guest printed cannot move the cursor, retitle the window, clear
/// the screen, hide lines or flood the terminal that shows it.
pub fn printable(text: &str, max: usize) -> Cow<'_, str> {
    let end = text.char_indices().nth(max).map(|(end, _)| end);
    if end.is_none() && !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let kept = &text[..end.unwrap_or(text.len())];
    let mut safe = String::with_capacity(kept.len() + 8);
    for c in kept.chars() {
        if !needs_escape(c) {
            safe.push(c);
        } else if (c as u32) < 0x100 {
            safe.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            safe.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    if let Some(end) = end {
        let more = text[end..].chars().count();
        safe.push_str(&format!("… [{more} more characters]"));
    }
    Cow::Owned(safe)
}

fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        // Bidirectional overrides and isolates reorder what a line seems to say.
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Bytes from a guest as printable text (invalid UTF-8 shown as U+FFFD), whole: a log shown
/// on a terminal, already bounded by its cap.
pub fn printable_bytes(bytes: &[u8]) -> String {
    printable(&String::from_utf8_lossy(bytes), usize::MAX).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_keeps_newlines_tabs_and_other_text() {
        let hostile = "ok\ttab\n\x1b]0;pwned\x07\x1b[2J\x00\r\u{9b}31m\u{202e}evil é";
        assert_eq!(
            printable(hostile, 100),
            "ok\ttab\n\\x1b]0;pwned\\x07\\x1b[2J\\x00\\x0d\\x9b31m\\u{202e}evil é"
        );
        assert!(matches!(printable("plain", 5), Cow::Borrowed("plain")));
    }

    #[test]
    fn printable_text_is_bounded_and_says_how_much_was_cut() {
        assert_eq!(printable("ééé\x1b", 2), "éé… [2 more characters]");
        assert_eq!(printable("abc", 3), "abc");
        let long = "x".repeat(QUOTED_LINE * 10);
        assert!(last_lines(&long, 1).len() < QUOTED_LINE + 40);
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
