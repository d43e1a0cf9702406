//! Shell quoting: the one place where text becomes part of a command run on a guest. Every
//! remote command is built from words quoted here, never by pasting strings together.

/// One word for a POSIX shell: bare when it is made only of safe characters, otherwise in
/// single quotes with each `'` written as `'\''`.
pub fn quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A command line from words, each quoted.
pub fn command<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_words_stay_bare_and_the_rest_is_single_quoted() {
        assert_eq!(quote("dev-master"), "dev-master");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$(id);`x`"), "'$(id);`x`'");
        assert_eq!(command(&["echo", "a b", "c"]), "echo 'a b' c");
    }

    /// What `sh -c "printf %s WORD"` prints.
    fn through_a_shell(word: &str) -> String {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", quote(word)))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn every_printable_character_round_trips_and_only_the_safe_ones_stay_bare() {
        let safe = "-_./:=@%+,";
        for c in (' '..='~').chain(['é', '€', '\u{1F600}', '\t', '\n']) {
            let word = format!("a{c}b");
            assert_eq!(through_a_shell(&word), word, "{c:?}");
            let bare = c.is_ascii_alphanumeric() || safe.contains(c);
            assert_eq!(
                !quote(&word).starts_with('\''),
                bare,
                "{c:?}: {}",
                quote(&word)
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

        #[test]
        fn any_printable_text_round_trips_through_a_real_shell(word in "[ -~]{0,24}") {
            proptest::prop_assert_eq!(through_a_shell(&word), word);
        }
    }

    #[test]
    fn quoted_words_come_back_unchanged_through_a_real_shell() {
        let nasty = "a'b\"c $HOME `id` \\ \n; | & * ? ~ # !";
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", quote(nasty)))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), nasty);
    }
}
