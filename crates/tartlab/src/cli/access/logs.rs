//! `tartlab logs [NODES...]`: what ran on the nodes, as `docker compose logs` shows a
//! project's, every line prefixed with its node and the nodes' entries in the order they ran:
//! the user's steps and probes as written with their output, tartlab's own commands folded
//! into a line each (`transcript.rs`). `--raw` shows the files as tartlab wrote them (the
//! VM's own log, then the whole transcript); `--journal` the guest's own view (the VM's
//! console log where the provider keeps one, and the systemd journal over SSH where the
//! guest has one). `--tail N` keeps each node's last N lines, `-F` follows. On a terminal,
//! guest text is shown escaped; a transcript is read from at most its last `READ_CAP` bytes.

use std::io::{BufRead, IsTerminal, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::transcript::{Reader, Shown};
use crate::cli::{select, FileOnly, LabSnapshot};
use crate::error::{Error, Exit, Result};
use crate::provider;

#[derive(clap::Args, Debug)]
#[command(
    after_long_help = "Examples:\n  tartlab logs\n  tartlab logs role=worker --tail 20\n  tartlab logs -F dev-master\n  tartlab logs --raw dev-master     (every command in full)\n  tartlab logs --journal dev-master (the guest's journal and console)"
)]
pub struct LogsArgs {
    #[command(flatten)]
    pub file: FileOnly,
    /// Only these nodes: names, cluster=NAME, role=NAME or all (default: all)
    #[arg(add = crate::cli::complete::selectors())]
    pub nodes: Vec<String>,
    /// Keep printing what is appended, until Ctrl-C (`-F`, as in tail; `-f` is the lab file,
    /// as everywhere)
    #[arg(long, short = 'F')]
    pub follow: bool,
    /// Only the last N lines of each node (of each log, with --raw)
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// The logs as tartlab wrote them: the VM's own log, then the transcript with tartlab's
    /// commands in full
    #[arg(long, conflicts_with = "journal")]
    pub raw: bool,
    /// The guest's own view: the VM's console log where the provider keeps one, and the
    /// systemd journal (over SSH) where the guest has one
    #[arg(long)]
    pub journal: bool,
}

/// The most of a transcript read (its end): a command's output is logged up to 16 MiB, and
/// a lab's worth of them need not all be in memory to show the last lines.
const READ_CAP: u64 = 32 * 1024 * 1024;

pub fn logs(args: &LogsArgs) -> Result<Exit> {
    let snapshot = LabSnapshot::open(&args.file.args())?;
    let nodes = select(&snapshot.lab.nodes, &args.nodes)?;
    let width = nodes.iter().map(String::len).max().unwrap_or(0);
    let out = Out {
        terminal: std::io::stdout().is_terminal(),
        width,
    };
    if args.raw {
        return raw(&snapshot, &nodes, args, &out);
    }
    if args.journal {
        return super::journal::show(&snapshot, &nodes, args.tail, args.follow, &out);
    }
    let paths: Vec<PathBuf> = nodes
        .iter()
        .map(|vm| snapshot.dir.provision_log(vm))
        .collect();
    let mut readers: Vec<Reader> = nodes.iter().map(|_| Reader::default()).collect();
    let mut offsets = vec![0u64; nodes.len()];
    let mut rest: Vec<Vec<u8>> = vec![Vec::new(); nodes.len()];
    // Each node's lines so far, its last N with --tail, then all in the order they ran.
    let mut all: Vec<(String, usize, usize, String)> = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let (bytes, end) = read_end(path)?;
        offsets[i] = end;
        let mut shown = feed(&mut readers[i], &mut rest[i], &bytes);
        if let Some(n) = args.tail {
            shown.drain(..shown.len().saturating_sub(n));
        }
        all.extend(
            shown
                .into_iter()
                .enumerate()
                .map(|(seq, s)| (s.time, i, seq, s.line)),
        );
    }
    all.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
    for (_, i, _, line) in &all {
        out.line(&nodes[*i], line);
    }
    if !args.follow {
        return Ok(Exit::Ok);
    }
    loop {
        std::thread::sleep(Duration::from_millis(300));
        for (i, path) in paths.iter().enumerate() {
            let Some(fresh) = appended(path, &mut offsets[i])? else {
                continue;
            };
            for shown in feed(&mut readers[i], &mut rest[i], &fresh) {
                out.line(&nodes[i], &shown.line);
            }
        }
    }
}

/// How lines reach stdout: prefixed with the node, escaped on a terminal.
pub(super) struct Out {
    pub terminal: bool,
    pub width: usize,
}

impl Out {
    pub(super) fn line(&self, node: &str, line: &str) {
        let line = if self.terminal {
            crate::text::printable(line, usize::MAX)
        } else {
            line.into()
        };
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{node:<w$} | {line}", w = self.width);
        let _ = stdout.flush();
    }
}

/// Whole lines of `bytes` (after what was left of the last read) through the reader.
fn feed(reader: &mut Reader, rest: &mut Vec<u8>, bytes: &[u8]) -> Vec<Shown> {
    rest.extend_from_slice(bytes);
    let Some(last) = rest.iter().rposition(|b| *b == b'\n') else {
        return Vec::new();
    };
    let whole: Vec<u8> = rest.drain(..=last).collect();
    String::from_utf8_lossy(&whole)
        .lines()
        .flat_map(|l| reader.feed(l))
        .collect()
}

fn open(path: &Path) -> std::io::Result<std::fs::File> {
    crate::files::open_nofollow(path, libc::O_RDONLY)
}

/// The end of a log (at most `READ_CAP` bytes, from an entry's start) and its length; nothing
/// when there is none yet.
fn read_end(path: &Path) -> Result<(Vec<u8>, u64)> {
    let mut file = match open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(Error::fatal(crate::files::describe_error(path, &e), "")),
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(READ_CAP);
    let _ = file.seek(std::io::SeekFrom::Start(from));
    let mut bytes = Vec::new();
    let _ = file.take(READ_CAP).read_to_end(&mut bytes);
    if from > 0 {
        // Cut in the middle of an entry: start at the next one.
        let next = bytes
            .windows(5)
            .position(|w| w == b"\n=== ")
            .map_or(bytes.len(), |p| p + 1);
        bytes.drain(..next);
    }
    Ok((bytes, len))
}

/// What was appended to a log since `offset` (from the start if it was cut short).
fn appended(path: &Path, offset: &mut u64) -> Result<Option<Vec<u8>>> {
    let Ok(mut file) = open(path) else {
        return Ok(None);
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len < *offset {
        *offset = 0;
    }
    if len == *offset || file.seek(std::io::SeekFrom::Start(*offset)).is_err() {
        return Ok(None);
    }
    let mut fresh = Vec::new();
    let _ = file.take(READ_CAP).read_to_end(&mut fresh);
    *offset += fresh.len() as u64;
    Ok(Some(fresh))
}

/// `--raw`: each node's files as written, each under a `==> PATH <==` header, node after
/// node (guest bytes as they are when piped, escaped on a terminal).
fn raw(snapshot: &LabSnapshot, nodes: &[String], args: &LogsArgs, out: &Out) -> Result<Exit> {
    let mut files = Vec::new();
    for vm in nodes {
        files.extend(console_logs(snapshot, vm));
        files.push(snapshot.dir.provision_log(vm));
    }
    let mut stdout = std::io::stdout();
    let mut show = |bytes: &[u8]| {
        let _ = if out.terminal {
            stdout.write_all(crate::text::printable_bytes(bytes).as_bytes())
        } else {
            stdout.write_all(bytes)
        };
        let _ = stdout.flush();
    };
    let mut offsets = vec![0u64; files.len()];
    for (i, path) in files.iter().enumerate() {
        show(format!("==> {} <==\n", path.display()).as_bytes());
        let (text, end) = read_end(path)?;
        offsets[i] = end;
        show(last_lines(&text, args.tail));
    }
    if !args.follow {
        return Ok(Exit::Ok);
    }
    loop {
        std::thread::sleep(Duration::from_millis(500));
        for (i, path) in files.iter().enumerate() {
            if let Some(fresh) = appended(path, &mut offsets[i])? {
                show(&fresh);
            }
        }
    }
}

/// The VM's own log files where its provider keeps them (`tart run`'s output; Orchard's
/// events for the VM, written to the run log first).
pub(super) fn console_logs(snapshot: &LabSnapshot, vm: &str) -> Vec<PathBuf> {
    let run_log = snapshot.dir.run_log(vm);
    match provider::open(Some(&snapshot.lab), None) {
        Ok(provider) => provider.console_logs(vm, &run_log),
        Err(e) => {
            eprintln!("warning: the VM's own logs cannot be shown: {}", e.message);
            Vec::new()
        }
    }
}

/// The last lines of a file, through `out` with the node's prefix.
pub(super) fn show_file_lines(path: &Path, node: &str, tail: Option<usize>, out: &Out) {
    let Ok((bytes, _)) = read_end(path) else {
        return;
    };
    let text = last_lines(&bytes, tail);
    for line in text.lines() {
        let line = line.unwrap_or_default();
        out.line(node, &line);
    }
}

/// The last `n` lines of a log (all of it without `n`).
fn last_lines(bytes: &[u8], n: Option<usize>) -> &[u8] {
    let Some(n) = n else {
        return bytes;
    };
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let start = body
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .nth(n.saturating_sub(1))
        .map_or(0, |(i, _)| i + 1);
    if n == 0 {
        return &bytes[bytes.len()..];
    }
    &bytes[start..]
}

#[cfg(test)]
mod tests {
    use super::last_lines;

    #[test]
    fn the_tail_of_a_log_is_its_last_lines() {
        let log = b"a\nb\nc\n";
        assert_eq!(last_lines(log, Some(2)), b"b\nc\n");
        assert_eq!(last_lines(log, Some(5)), log);
        assert_eq!(last_lines(log, None), log);
        assert_eq!(last_lines(log, Some(0)), b"");
        assert_eq!(last_lines(b"x\ny", Some(1)), b"y");
    }
}
