//! Secret values (outputs a step declares `secret: true`): learnt from what a step prints
//! (`tartlab-output KEY=VALUE`) before anything shows or logs it, and replaced by `********`
//! in everything tartlab shows or writes, the state file aside, in each form a value takes
//! there: as it is, inside a shell's single quotes (`'\''` for each `'`) and escaped as in
//! JSON.

use std::collections::BTreeSet;
use std::sync::Mutex;

/// The prefix of a line by which a step passes a value on.
pub const OUTPUT_PREFIX: &str = "tartlab-output ";

pub struct Masker {
    /// The output keys whose values are secret.
    secret_keys: BTreeSet<String>,
    values: Mutex<BTreeSet<String>>,
}

impl Masker {
    pub fn new(secret_keys: BTreeSet<String>) -> Masker {
        Masker {
            secret_keys,
            values: Mutex::new(BTreeSet::new()),
        }
    }

    pub fn is_secret_key(&self, key: &str) -> bool {
        self.secret_keys.contains(key)
    }

    /// Adds known secret values (from the state file, at the start).
    pub fn add(&self, values: impl IntoIterator<Item = String>) {
        if let Ok(mut known) = self.values.lock() {
            known.extend(values.into_iter().filter(|v| !v.is_empty()));
        }
    }

    /// Remembers the value when the line (of a command's stdout) passes a secret output on.
    pub fn learn(&self, line: &str) {
        if self.secret_keys.is_empty() {
            return;
        }
        let found = line
            .trim_end_matches('\r')
            .strip_prefix(OUTPUT_PREFIX)
            .and_then(|kv| kv.split_once('='))
            .filter(|(key, _)| self.is_secret_key(key.trim()));
        if let Some((_, value)) = found {
            self.add([value.to_string()]);
        }
    }

    /// The text with every known secret value, in each of its forms, replaced by
    /// `********`.
    pub fn mask(&self, text: &str) -> String {
        let Ok(values) = self.values.lock() else {
            return text.to_string();
        };
        let mut masked = text.to_string();
        for value in values.iter() {
            for form in forms(value) {
                if masked.contains(form.as_str()) {
                    masked = masked.replace(form.as_str(), "********");
                }
            }
        }
        masked
    }
}

/// The ways a value is written in what tartlab shows or logs, the longest rewriting first
/// so that a form that contains another is replaced whole.
fn forms(value: &str) -> Vec<String> {
    let quoted = value.replace('\'', r"'\''");
    let json = serde_json::to_string(value).unwrap_or_default();
    let json = json.trim_matches('"').to_string();
    let mut forms = vec![quoted, json, value.to_string()];
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms.dedup();
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_outputs_are_learnt_and_masked_others_are_not() {
        let masker = Masker::new(["token".to_string()].into());
        masker.learn("tartlab-output token=s3cret");
        masker.learn("tartlab-output url=https://x");
        assert_eq!(
            masker.mask("joined with s3cret at https://x"),
            "joined with ******** at https://x"
        );
    }

    #[test]
    fn a_secret_is_masked_quoted_for_the_shell_and_escaped_for_json() {
        let masker = Masker::new(["token".to_string()].into());
        masker.learn(r#"tartlab-output token=S3cr'et"x\"#);
        let quoted = crate::quote::quote(r#"S3cr'et"x\"#);
        assert_eq!(
            masker.mask(&format!("export TOKEN={quoted}")),
            "export TOKEN='********'"
        );
        let json = serde_json::json!({ "env": r#"S3cr'et"x\"# }).to_string();
        assert_eq!(masker.mask(&json), r#"{"env":"********"}"#);
        assert_eq!(masker.mask(r#"raw S3cr'et"x\ end"#), "raw ******** end");
    }
}
