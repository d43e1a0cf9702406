//! A node's transcript as `logs` shows it: each entry the user's (a step, a ready probe) as
//! written, its command then its output, and each of tartlab's own commands folded into one
//! line (what it was, the parts it said were done, how it ended, how many lines `--raw`
//! shows), with its output when it failed. Read a line at a time, so the same reader serves
//! the whole file and what `-F` sees appended. The header format is the runner's
//! (`guest/runner.rs`): `=== TIME VM KIND:N WHAT`, then the N lines of `$ SHOWN`.

use crate::engine::remote::DONE_PREFIX;

/// The most output lines a folded entry keeps, to show them if the command failed.
const KEPT_ON_FAILURE: usize = 20;

/// One line to show, with the time of the entry it belongs to (for the order across nodes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub time: String,
    pub line: String,
}

#[derive(Debug, Default)]
struct Entry {
    time: String,
    /// Whether it is tartlab's own command, folded until it ends.
    folded: bool,
    what: String,
    /// Lines of the `$` command still to come.
    command_left: usize,
    lines: usize,
    done: Vec<String>,
    output: Vec<String>,
    dropped: usize,
}

/// Reads a transcript line by line; what to show comes out as soon as it is known.
#[derive(Debug, Default)]
pub struct Reader {
    entry: Option<Entry>,
}

impl Reader {
    /// The lines to show for one more line of the transcript.
    pub fn feed(&mut self, line: &str) -> Vec<Shown> {
        if let Some(header) = line.strip_prefix("=== ") {
            return self.begin(header);
        }
        let Some(entry) = self.entry.as_mut() else {
            return vec![shown("", line)];
        };
        entry.lines += 1;
        if entry.command_left > 0 {
            entry.command_left -= 1;
            if entry.folded {
                return Vec::new();
            }
            let first = entry.lines == 1;
            return vec![shown(
                &entry.time,
                &if first {
                    line.to_string()
                } else {
                    format!("  {line}")
                },
            )];
        }
        let ended = line.starts_with("[exit status ") || line.starts_with("[error] ");
        if !entry.folded {
            let time = entry.time.clone();
            if ended {
                self.entry = None;
            }
            return vec![shown(&time, line)];
        }
        if !ended {
            if let Some(part) = line.strip_prefix(DONE_PREFIX) {
                entry.done.push(part.to_string());
            } else if entry.output.len() < KEPT_ON_FAILURE {
                entry.output.push(line.to_string());
            } else {
                entry.output.remove(0);
                entry.output.push(line.to_string());
                entry.dropped += 1;
            }
            return Vec::new();
        }
        let Some(entry) = self.entry.take() else {
            return Vec::new();
        };
        fold(entry, line)
    }

    fn begin(&mut self, header: &str) -> Vec<Shown> {
        let mut words = header.splitn(4, ' ');
        let time = words.next().unwrap_or("").to_string();
        let _vm = words.next();
        let kind = words.next().and_then(|k| k.split_once(':'));
        let what = words.next().unwrap_or("").to_string();
        let (folded, command_left) = match kind {
            Some((kind, n)) => (kind == "tartlab", n.parse().unwrap_or(1)),
            // A transcript an older tartlab wrote: shown as it is.
            None => (false, 1),
        };
        self.entry = Some(Entry {
            time,
            folded,
            what,
            command_left,
            ..Entry::default()
        });
        Vec::new()
    }
}

fn shown(time: &str, line: &str) -> Shown {
    Shown {
        time: time.to_string(),
        line: line.to_string(),
    }
}

/// A tartlab command's entry as one line; its output too when it failed.
fn fold(entry: Entry, end: &str) -> Vec<Shown> {
    let failed = end != "[exit status 0]";
    let status = end.trim_start_matches('[').trim_end_matches(']');
    let done = if entry.done.is_empty() {
        String::new()
    } else {
        format!(": {}", entry.done.join(", "))
    };
    let mut lines = vec![shown(
        &entry.time,
        &format!(
            "[tartlab] {}{done} ({status}; {} lines with --raw)",
            entry.what,
            entry.lines + 1
        ),
    )];
    if failed {
        if entry.dropped > 0 {
            lines.push(shown(
                &entry.time,
                &format!("  [{} earlier lines]", entry.dropped),
            ));
        }
        for line in entry.output {
            lines.push(shown(&entry.time, &format!("  {line}")));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Vec<String> {
        let mut reader = Reader::default();
        text.lines()
            .flat_map(|l| reader.feed(l))
            .map(|s| s.line)
            .collect()
    }

    #[test]
    fn tartlab_s_commands_fold_and_the_user_s_show_as_written() {
        let text = "=== T1 vm tartlab:2 base provisioning\n$ sudo -n /bin/bash -c 'umask 077\nflock' x\ntartlab-done: identity\nnoise\ntartlab-done: user devops\n[exit status 0]\n=== T2 vm user:2 step `hello`\n$ step `hello`:\necho hi\nhi\n[exit status 0]\n";
        assert_eq!(
            read(text),
            [
                "[tartlab] base provisioning: identity, user devops (exit status 0; 7 lines with --raw)",
                "$ step `hello`:",
                "  echo hi",
                "hi",
                "[exit status 0]",
            ]
        );
    }

    #[test]
    fn a_failed_tartlab_command_shows_its_output_and_an_old_transcript_shows_as_it_is() {
        let text = "=== T1 vm tartlab:1 the /etc/hosts block\n$ sudo x\nawk: no\n[exit status 2]\n=== T0 vm\n$ old\nout\n";
        assert_eq!(
            read(text),
            [
                "[tartlab] the /etc/hosts block (exit status 2; 4 lines with --raw)",
                "  awk: no",
                "$ old",
                "out",
            ]
        );
    }
}
