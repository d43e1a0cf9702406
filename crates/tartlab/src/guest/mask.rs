//! Secret values (outputs a step declares `secret: true`): learnt from what a step prints
//! (`tartlab-output KEY=VALUE`) before anything shows or logs it, and replaced by `********`
//! in everything tartlab shows or writes, the state file aside.

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

    /// Remembers the values of secret outputs a command printed.
    pub fn learn(&self, stdout: &str) {
        if self.secret_keys.is_empty() {
            return;
        }
        let found = stdout.lines().filter_map(|line| {
            let (key, value) = line
                .trim_end_matches('\r')
                .strip_prefix(OUTPUT_PREFIX)?
                .split_once('=')?;
            self.is_secret_key(key.trim()).then(|| value.to_string())
        });
        self.add(found.collect::<Vec<_>>());
    }

    /// The text with every known secret value replaced by `********`.
    pub fn mask(&self, text: &str) -> String {
        let Ok(values) = self.values.lock() else {
            return text.to_string();
        };
        let mut masked = text.to_string();
        for value in values.iter() {
            masked = masked.replace(value.as_str(), "********");
        }
        masked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_outputs_are_learnt_and_masked_others_are_not() {
        let masker = Masker::new(["token".to_string()].into());
        masker.learn("tartlab-output token=s3cret\ntartlab-output url=https://x\n");
        assert_eq!(
            masker.mask("joined with s3cret at https://x"),
            "joined with ******** at https://x"
        );
    }
}
