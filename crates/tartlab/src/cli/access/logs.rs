//! `tartlab logs NODE`: a node's own output where its provider keeps it, then tartlab's
//! transcript of what ran there (all of each, or its last lines with `--tail`), and with
//! `-F` what is appended to them.

use std::io::{IsTerminal, Read, Seek, Write};
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{FileOnly, LabSnapshot};
use crate::error::{Error, Exit, Result};
use crate::provider;

#[derive(clap::Args, Debug)]
#[command(
    after_long_help = "Examples:\n  tartlab logs dev-master\n  tartlab logs --tail 50 -F dev-master"
)]
pub struct LogsArgs {
    #[command(flatten)]
    pub file: FileOnly,
    /// The node (VM name)
    pub node: String,
    /// Keep printing what is appended, until Ctrl-C (`-F`, as in tail; `-f` is the lab file,
    /// as everywhere)
    #[arg(long, short = 'F')]
    pub follow: bool,
    /// Only the last N lines of each log
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
}

pub fn logs(args: &LogsArgs) -> Result<Exit> {
    let snapshot = LabSnapshot::open(&args.file.args())?;
    let node = snapshot.node(&args.node)?;
    // The VM's own output where its provider keeps it, then tartlab's transcript.
    let run_log = snapshot.dir.run_log(&node.vm_name);
    let mut files = match provider::open(Some(&snapshot.lab), None) {
        Ok(provider) => provider.console_logs(&node.vm_name, &run_log),
        Err(e) => {
            eprintln!("warning: the VM's own logs cannot be shown: {}", e.message);
            Vec::new()
        }
    };
    files.push(snapshot.dir.provision_log(&node.vm_name));
    // Guest output in the logs is kept as it came; on a terminal it is shown printable.
    let terminal = std::io::stdout().is_terminal();
    let mut stdout = std::io::stdout();
    let mut show = |bytes: &[u8]| {
        let _ = if terminal {
            stdout.write_all(crate::text::printable_bytes(bytes).as_bytes())
        } else {
            stdout.write_all(bytes)
        };
        let _ = stdout.flush();
    };
    let open = |path: &PathBuf| crate::files::open_nofollow(path, libc::O_RDONLY);
    let mut offsets = vec![0u64; files.len()];
    for (i, path) in files.iter().enumerate() {
        show(format!("==> {} <==\n", path.display()).as_bytes());
        match open(path) {
            Ok(mut file) => {
                let mut text = Vec::new();
                let _ = file.read_to_end(&mut text);
                offsets[i] = text.len() as u64;
                show(last_lines(&text, args.tail));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::fatal(crate::files::describe_error(path, &e), "")),
        }
    }
    if !args.follow {
        return Ok(Exit::Ok);
    }
    loop {
        std::thread::sleep(Duration::from_millis(500));
        for (i, path) in files.iter().enumerate() {
            let Ok(mut file) = open(path) else {
                continue;
            };
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            if len < offsets[i] {
                offsets[i] = 0;
            }
            if len == offsets[i] || file.seek(std::io::SeekFrom::Start(offsets[i])).is_err() {
                continue;
            }
            let mut fresh = Vec::new();
            let _ = file.read_to_end(&mut fresh);
            offsets[i] += fresh.len() as u64;
            show(&fresh);
        }
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
