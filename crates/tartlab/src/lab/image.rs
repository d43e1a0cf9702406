//! An image reference read as tart reads it before it asks any registry:
//! `host[:port]/namespace[:tag|@sha256:<hex>]` by the grammar of tart's
//! `Sources/tart/OCI/Reference/Reference.g4` (unchanged from 2.31.0 to 2.32), plus the two
//! rules every registry adds (lower-case repository paths, tags of at most 128 characters).
//! A name without `/` is a local tart VM's. A problem says at which character it starts.

/// What is wrong with an image reference: the character (0-based) where it goes wrong, and
/// why, in words.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed {
    pub at: usize,
    pub why: String,
}

/// The most characters of a tag (the OCI distribution spec's limit).
const MAX_TAG: usize = 128;

/// Checks `reference`: a registry reference when it has a `/`, else a local VM's name.
pub fn check(reference: &str) -> Result<(), Malformed> {
    if reference.contains('/') {
        return Reader::new(reference).remote();
    }
    if super::names::is_label(reference) {
        return Ok(());
    }
    let at = reference
        .chars()
        .position(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
        .unwrap_or(0);
    let why = if reference.contains(':') {
        "it has no `/`, so it names a local VM, and a local VM's name has no `:`; a registry image starts with its registry and repository (e.g. `ghcr.io/cirruslabs/ubuntu:24.04`)".to_string()
    } else {
        "a local VM's name is lower-case letters, digits and `-`, not starting or ending with `-`, at most 63 characters".to_string()
    };
    Err(Malformed { at, why })
}

/// A left-to-right reading of a registry reference, one character of look-ahead, as tart's
/// generated parser does.
struct Reader {
    chars: Vec<char>,
    at: usize,
}

fn is_separator(c: char) -> bool {
    matches!(c, '.' | '-' | '_')
}

impl Reader {
    fn new(text: &str) -> Reader {
        Reader {
            chars: text.chars().collect(),
            at: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn fail<T>(&self, why: impl Into<String>) -> Result<T, Malformed> {
        Err(Malformed {
            at: self.at,
            why: why.into(),
        })
    }

    /// What the character here is, for a message: `` `x` `` or "the end".
    fn here(&self) -> String {
        match self.peek() {
            Some(c) if c.is_control() || c == ' ' => format!("`{}`", c.escape_default()),
            Some(c) => format!("`{c}`"),
            None => "the end".to_string(),
        }
    }

    /// One or more letters or digits (the grammar's `name`), or why not.
    fn name(&mut self, of: &str) -> Result<(), Malformed> {
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
            self.at += 1;
        }
        if self.at == start {
            return self.fail(format!(
                "{} where {of} needs a letter or digit",
                self.here()
            ));
        }
        Ok(())
    }

    fn remote(mut self) -> Result<(), Malformed> {
        self.host()?;
        if self.peek() == Some(':') {
            self.at += 1;
            let start = self.at;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.at += 1;
            }
            if self.at == start {
                return self.fail(format!(
                    "{} where the registry's port needs digits (`host:port/...`)",
                    self.here()
                ));
            }
        }
        if self.peek() != Some('/') {
            return self.fail(format!(
                "{} cannot be in the registry host: it is letters, digits, and `.` or `-` between them, then `/`",
                self.here()
            ));
        }
        self.at += 1;
        self.namespace()?;
        match self.peek() {
            None => Ok(()),
            Some(':') => {
                self.at += 1;
                self.tag()
            }
            Some('@') => {
                self.at += 1;
                self.digest()
            }
            Some(_) => self.fail(format!(
                "{} cannot be in a repository path: it is letters, digits, and `.`, `-` or `_` between them, parts joined by `/`",
                self.here()
            )),
        }
    }

    /// `host_component ('.' host_component)*`, each `name ('-' name)*`.
    fn host(&mut self) -> Result<(), Malformed> {
        loop {
            self.name("the registry host")?;
            match self.peek() {
                Some('-') | Some('.') => self.at += 1,
                _ => return Ok(()),
            }
        }
    }

    /// Parts joined by `/`, each `(name separator?)+`, lower case.
    fn namespace(&mut self) -> Result<(), Malformed> {
        loop {
            self.name("each part of the repository path")?;
            loop {
                if self.chars[..self.at]
                    .iter()
                    .rev()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .any(|c| c.is_ascii_uppercase())
                {
                    let first = self.chars[..self.at]
                        .iter()
                        .rposition(|c| !c.is_ascii_alphanumeric())
                        .map_or(0, |p| p + 1);
                    let upper = self.chars[first..self.at]
                        .iter()
                        .position(|c| c.is_ascii_uppercase())
                        .unwrap_or(0);
                    self.at = first + upper;
                    return self.fail("a repository path is lower case: registries refuse upper-case letters in it");
                }
                if self.peek().is_some_and(is_separator) {
                    self.at += 1;
                    if self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
                        self.name("a repository path")?;
                        continue;
                    }
                }
                break;
            }
            if self.peek() != Some('/') {
                return Ok(());
            }
            self.at += 1;
        }
    }

    /// `name (separator name)*`, at most `MAX_TAG` characters, then the end.
    fn tag(&mut self) -> Result<(), Malformed> {
        let start = self.at;
        loop {
            self.name("the tag")?;
            if !self.peek().is_some_and(is_separator) {
                break;
            }
            self.at += 1;
        }
        if self.at - start > MAX_TAG {
            self.at = start + MAX_TAG;
            return self.fail(format!(
                "the tag is longer than the {MAX_TAG} characters a registry takes"
            ));
        }
        self.end("the tag")
    }

    /// `sha256:` and 64 hexadecimal digits, then the end.
    fn digest(&mut self) -> Result<(), Malformed> {
        let rest: String = self.chars[self.at..].iter().collect();
        let Some(hex) = rest.strip_prefix("sha256:") else {
            return self.fail("a digest is `sha256:` and 64 hexadecimal digits");
        };
        self.at += "sha256:".len();
        let digits = hex.chars().take_while(char::is_ascii_hexdigit).count();
        self.at += digits;
        if digits != 64 {
            return self.fail(format!(
                "a sha256 digest has 64 hexadecimal digits, this one {digits}"
            ));
        }
        self.end("the digest")
    }

    fn end(&self, after: &str) -> Result<(), Malformed> {
        match self.peek() {
            None => Ok(()),
            Some(_) => self.fail(format!("{} cannot follow {after}", self.here())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(reference: &str) -> Option<usize> {
        check(reference).err().map(|m| m.at)
    }

    #[test]
    fn what_tart_parses_is_an_image() {
        for good in [
            "ghcr.io/cirruslabs/ubuntu:latest",
            "ghcr.io/cirruslabs/ubuntu",
            "ghcr.io/a/b:1.2.3-RC-1",
            "127.0.0.1:8080/a/b",
            "registry.example-1.com/team_x/vm-image.v2:v1_2",
            "ghcr.io/a_/b",
            "ghcr.io/a/b@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "ubuntu-base",
        ] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn a_malformed_reference_says_where_it_goes_wrong() {
        // Each as tart's own tests and grammar have it.
        assert_eq!(at("ghcr.io/a/../b/c:latest"), Some(10));
        assert_eq!(at("127.0.0.1:/a/b"), Some(10));
        assert_eq!(at("ghcr.io/cirruslabs/ubuntu:24..04"), Some(29));
        assert_eq!(at("ghcr.io/cirruslabs/ubuntu:"), Some(26));
        assert_eq!(at("ghcr.io/cirruslabs/ubuntu:-rc"), Some(26));
        assert_eq!(at("ghcr..io/a"), Some(5));
        assert_eq!(at("-ghcr.io/a"), Some(0));
        assert_eq!(at("ghcr.io:x/a"), Some(8));
        assert_eq!(at("ghcr_io/a"), Some(4));
        assert_eq!(at("ghcr.io//a"), Some(8));
        assert_eq!(at("ghcr.io/a/"), Some(10));
        assert_eq!(at("ghcr.io/a/b:tag/c"), Some(15));
        assert_eq!(at("ghcr.io/tou/ché:latest"), Some(14));
        assert_eq!(at("ghcr.io/Bad Image"), Some(8));
        assert_eq!(at("ghcr.io/bad image"), Some(11));
        assert_eq!(at("ghcr.io/a/b@sha256:abc"), Some(22));
        assert_eq!(at("ghcr.io/a/b@md5:abc"), Some(12));
        assert_eq!(at(&format!("ghcr.io/a:{}", "t".repeat(129))), Some(138));
        assert_eq!(at("ubuntu:24.04"), Some(6));
        assert_eq!(at("Ubuntu"), Some(0));
    }

    #[test]
    fn a_reference_without_a_host_is_told_what_a_registry_image_looks_like() {
        let why = check("ubuntu:24.4").unwrap_err().why;
        assert!(why.contains("ghcr.io/cirruslabs/ubuntu:24.04"), "{why}");
    }
}
