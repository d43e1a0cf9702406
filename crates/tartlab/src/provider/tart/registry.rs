//! What a failed `tart pull` says, in the registry's words: tart prints a registry's refusal
//! as Swift prints its error value, `Error: UnexpectedHTTPStatusCode(when: "pulling
//! manifest", code: 404, details: "{\"errors\":[...]}")` (tart's `OCI/Registry.swift`, which
//! gives `RegistryError` no description), and this turns it into a line a person reads:
//! `the registry answered HTTP 404 while pulling manifest: MANIFEST_UNKNOWN: manifest
//! unknown`. Anything else tart says is passed on as it is; either way bounded and printable.

use serde::Deserialize;

/// The most characters of what a failed pull says.
const WORDS: usize = 300;

/// The registry's (or tart's) words for a pull that failed: the last line tart said (its
/// stderr comes after its stdout), or that it said nothing.
pub fn pull_failure(code: Option<i32>, output: &str) -> String {
    let last = output
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(str::to_string);
    let Some(line) = last else {
        return match code {
            Some(code) => format!("`tart pull` exited with {code} and said nothing"),
            None => "`tart pull` was killed and said nothing".to_string(),
        };
    };
    let line = line.strip_prefix("Error: ").unwrap_or(&line);
    let words = http_status(line).unwrap_or_else(|| line.to_string());
    crate::text::cut(&crate::text::printable(&words, 4 * WORDS), WORDS)
}

/// `UnexpectedHTTPStatusCode(when: "W", code: N, details: "D")` in words, D's OCI errors
/// (`{"errors":[{"code":..,"message":..}]}`) as `CODE: message`.
fn http_status(line: &str) -> Option<String> {
    let rest = line.strip_prefix("UnexpectedHTTPStatusCode(when: \"")?;
    let (when, rest) = rest.split_once("\", code: ")?;
    let (code, rest) = rest.split_once(|c: char| !c.is_ascii_digit())?;
    let details = rest
        .strip_prefix(" details: \"")
        .and_then(|d| d.strip_suffix("\")"))
        .map(unescape)
        .unwrap_or_default();
    let said = oci_errors(&details).unwrap_or(details);
    let said = said.trim();
    Some(if said.is_empty() {
        format!("the registry answered HTTP {code} while {when}")
    } else {
        format!("the registry answered HTTP {code} while {when}: {said}")
    })
}

/// A Swift string literal's text: `\"`, `\\`, `\n`, `\t` and `\r` undone.
fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[derive(Deserialize)]
struct OciErrors {
    errors: Vec<OciError>,
}

#[derive(Deserialize)]
struct OciError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The OCI distribution spec's error body as `CODE: message; CODE: message`.
fn oci_errors(body: &str) -> Option<String> {
    let parsed: OciErrors = serde_json::from_str(body).ok()?;
    let said: Vec<String> = parsed
        .errors
        .iter()
        .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
            (false, false) => format!("{}: {}", e.code, e.message),
            (true, _) => e.message.clone(),
            (false, true) => e.code.clone(),
        })
        .filter(|s| !s.is_empty())
        .collect();
    (!said.is_empty()).then(|| said.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_refusal_is_said_in_its_own_words() {
        let stderr = r#"Error: UnexpectedHTTPStatusCode(when: "pulling manifest", code: 404, details: "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"manifest unknown\"}]}")"#;
        assert_eq!(
            pull_failure(Some(1), &format!("pulling manifest...\n{stderr}\n")),
            "the registry answered HTTP 404 while pulling manifest: MANIFEST_UNKNOWN: manifest unknown"
        );
        let not_json = r#"Error: UnexpectedHTTPStatusCode(when: "pulling manifest", code: 502, details: "<html>bad gateway</html>")"#;
        assert_eq!(
            pull_failure(Some(1), not_json),
            "the registry answered HTTP 502 while pulling manifest: <html>bad gateway</html>"
        );
    }

    #[test]
    fn anything_else_is_passed_on_bounded_and_printable() {
        assert_eq!(
            pull_failure(Some(1), "failed to parse remote name: x\n"),
            "failed to parse remote name: x"
        );
        let long = format!("Error: {}\x1b[31m", "a".repeat(1000));
        let said = pull_failure(Some(1), &long);
        assert!(said.chars().count() <= WORDS + 1, "{said}");
        assert!(!said.contains('\x1b'), "{said}");
        assert_eq!(
            pull_failure(Some(1), ""),
            "`tart pull` exited with 1 and said nothing"
        );
    }
}
