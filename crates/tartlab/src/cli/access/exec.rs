//! `tartlab exec SELECTOR COMMAND...` (as `ssh NODE COMMAND...`) or `tartlab exec
//! SELECTOR... -- COMMAND...`: one command on many nodes at once, over SSH with the lab key
//! and pinned host keys; each line prefixed with its node as it comes, then a recap (or
//! `--json`).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{login_timeout, not_pinned_hint, provider_and_inventory, RunAs, NOT_PINNED};
use crate::cli::{out, runtime, select, FileArgs, LabSnapshot};
use crate::dial::Dialer;
use crate::engine::fanout;
use crate::error::{Error, Exit, Result};
use crate::guest::ssh::{self, Auth, Output};
use crate::lab::Node;
use crate::state::KnownHosts;
use crate::ui;

#[derive(clap::Args, Debug)]
#[command(
    override_usage = "tartlab exec [OPTIONS] SELECTOR COMMAND...\n       tartlab exec [OPTIONS] SELECTOR... -- COMMAND...",
    after_long_help = "Without `--`, the first word is the selector and the rest the command, as `ssh NODE COMMAND` takes it (options go before the command); `--` is needed only to give several selectors.\n\nExamples:\n  tartlab exec all hostname\n  tartlab exec role=worker df -h /\n  tartlab exec all -- uptime\n  tartlab exec cluster=dev,stg -- 'systemctl is-active k3s'\n  tartlab exec 'dev-*' role=db --json -- df -h /\n  tartlab exec --user root all -- apt-get install -y jq   (root by the login user's sudo)"
)]
pub struct ExecArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Run as this user (root, say) instead of the image's login user, by the login user's
    /// sudo: the images have no root login
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// How many nodes at once (1 to 1024)
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = crate::cli::parallelism())]
    pub parallel: usize,
    /// Which nodes: names, cluster=NAME, role=NAME or all; lists (cluster=dev,stg) and globs
    /// (dev-*) too. Several selectors need `--` before the command
    #[arg(required = true, add = crate::cli::complete::selectors())]
    pub selectors: Vec<String>,
    /// Give the command no input (as `ssh -n`). Otherwise stdin, when it is not a terminal,
    /// goes to the command on each node as it comes, the same bytes to each
    #[arg(long, short = 'n')]
    pub no_stdin: bool,
    /// Stop waiting for a node's command after this many seconds (default: no limit)
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// The command, run by the login shell on each node (as ssh does). Each line it prints
    /// is shown as it comes, after the node's name; for raw bytes use `tartlab ssh`
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// The command line with `exec SELECTOR COMMAND...` written as `exec SELECTOR -- COMMAND...`,
/// so clap reads the shape people type after `ssh NODE COMMAND...`: without `--`, the first
/// word that is not an option (or an option's value) is the selector and everything after
/// it is the command, options included. A line with `--` already, or not an `exec`, is
/// returned as it is.
pub fn command_marked(words: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let Some(at) = words.iter().position(|w| w == "exec") else {
        return words;
    };
    // `exec` must be the subcommand, not a value: tartlab takes no option before it.
    if at != 1 || words[at + 1..].iter().any(|w| w == "--") {
        return words;
    }
    let definition = <crate::cli::Cli as clap::CommandFactory>::command();
    let Some(exec) = definition.find_subcommand("exec") else {
        return words;
    };
    let takes_value = |word: &str| -> bool {
        let arg = if let Some(long) = word.strip_prefix("--") {
            if long.contains('=') {
                return false;
            }
            exec.get_arguments().find(|a| a.get_long() == Some(long))
        } else {
            // `-u` takes the next word; `-uroot` carries its own.
            let mut chars = word.chars().skip(1);
            match (chars.next(), chars.next()) {
                (Some(short), None) => exec.get_arguments().find(|a| a.get_short() == Some(short)),
                _ => None,
            }
        };
        arg.is_some_and(|a| a.get_action().takes_values())
    };
    let mut i = at + 1;
    while i < words.len() {
        let word = words[i].to_string_lossy();
        if word.starts_with('-') && word.len() > 1 {
            i += if takes_value(&word) { 2 } else { 1 };
            continue;
        }
        // The selector: a command after it, unless the next word asks for help.
        let next = words.get(i + 1).map(|w| w.to_string_lossy());
        if next.is_none() || matches!(next.as_deref(), Some("-h" | "--help")) {
            return words;
        }
        let mut marked = words;
        marked.insert(i + 1, "--".into());
        return marked;
    }
    words
}

/// What one node's command did, for the recap and `--json` (each output its last MiB, with
/// how many bytes came before it).
#[derive(serde::Serialize)]
struct ExecResult {
    node: String,
    exit_code: Option<u32>,
    stdout: String,
    stderr: String,
    #[serde(skip_serializing_if = "is_zero")]
    stdout_dropped_bytes: u64,
    #[serde(skip_serializing_if = "is_zero")]
    stderr_dropped_bytes: u64,
    error: Option<String>,
    seconds: f64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn node_colour(i: usize) -> &'static str {
    ["36", "33", "35", "32", "34", "96", "93", "95"][i % 8]
}

/// One command on one node, with the lab key and the pinned host keys; each line it prints
/// goes to `on_line` as it comes.
async fn run_one(
    job: &ExecJob,
    stdin: Option<tokio::sync::mpsc::Receiver<Vec<u8>>>,
    dialer: &dyn Dialer,
    on_line: &mut (dyn FnMut(ssh::Stream, &str) -> ssh::Reply + Send),
) -> std::result::Result<Output, String> {
    let Some(pins) = job.pinned.clone() else {
        return Err(format!("{NOT_PINNED}; {}", not_pinned_hint(&job.vm)));
    };
    let connection = ssh::connect(
        dialer,
        &job.user,
        Auth::Key(&job.key),
        ssh::HostKeys::Pinned(pins),
        login_timeout(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let running = async {
        connection
            .exec_with(
                &job.command,
                match stdin {
                    Some(chunks) => ssh::Input::Streamed(chunks),
                    None => ssh::Input::Given(None),
                },
                on_line,
            )
            .await
            .map_err(|e| e.to_string())
    };
    let output = match job.timeout {
        Some(limit) => tokio::time::timeout(limit, running)
            .await
            .unwrap_or_else(|_| Err(format!("no end within {} s (--timeout)", limit.as_secs()))),
        None => running.await,
    };
    connection.close().await;
    output
}

/// Everything one node's `exec` needs, gathered before the fan-out.
struct ExecJob {
    index: usize,
    vm: String,
    user: String,
    /// The way to its sshd, or why it cannot be reached.
    dialer: std::result::Result<Arc<dyn Dialer>, String>,
    /// The VM's pinned host keys; none: nothing is sent to it.
    pinned: Option<ssh::Pins>,
    key: Arc<russh::keys::PrivateKey>,
    command: String,
    /// What the command reads on its stdin: the same bytes on every node, as they come.
    stdin: Option<tokio::sync::mpsc::Receiver<Vec<u8>>>,
    timeout: Option<Duration>,
}

/// How many chunks of stdin may wait for a node that has not taken them yet.
const STDIN_QUEUE: usize = 64;

/// `exec`'s stdin, streamed to every node as it comes (as `ssh` streams it, so a pipe that
/// stays open never holds up a command that does not read it): one queue per node, fed by
/// one thread, each chunk to every node whose command still runs. None with `-n` or from a
/// terminal (a shell's keyboard is not a command's input).
fn stream_stdin(no_stdin: bool, nodes: usize) -> Vec<Option<tokio::sync::mpsc::Receiver<Vec<u8>>>> {
    use std::io::Read;
    if no_stdin || std::io::stdin().is_terminal() {
        return (0..nodes).map(|_| None).collect();
    }
    let (mut senders, receivers): (Vec<_>, Vec<_>) = (0..nodes)
        .map(|_| tokio::sync::mpsc::channel::<Vec<u8>>(STDIN_QUEUE))
        .unzip();
    // Never joined: when every command is over, exec returns and the process ends with it.
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buffer = vec![0u8; 64 * 1024];
        while !senders.is_empty() {
            let n = match stdin.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // A node whose command ended has dropped its queue: it gets no more.
            senders.retain(|s| s.blocking_send(buffer[..n].to_vec()).is_ok());
        }
    });
    receivers.into_iter().map(Some).collect()
}

pub fn exec(args: &ExecArgs) -> Result<Exit> {
    let snapshot = LabSnapshot::open(&args.file)?;
    let selected = select(&snapshot.lab.nodes, &args.selectors)?;
    let targets: Vec<&Node> = snapshot
        .lab
        .nodes
        .iter()
        .filter(|n| selected.contains(&n.vm_name))
        .collect();
    let (provider, inventory) = provider_and_inventory(&snapshot)?;
    let key = Arc::new(
        snapshot
            .dir
            .lab_key()
            .map_err(|e| Error::fatal(e, "check .tartlab/id_ed25519"))?,
    );
    let known = KnownHosts::new(&snapshot.dir);
    let mut stdin = stream_stdin(args.no_stdin, targets.len());
    let show = Shown {
        colour: std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        terminal: (
            std::io::stdout().is_terminal(),
            std::io::stderr().is_terminal(),
        ),
        width: targets.iter().map(|n| n.vm_name.len()).max().unwrap_or(0),
        json: args.file.json,
    };
    let jobs: Vec<ExecJob> = targets
        .iter()
        .enumerate()
        .map(|(index, node)| ExecJob {
            index,
            vm: node.vm_name.clone(),
            user: node.login.user.clone(),
            dialer: snapshot
                .address(node, &inventory)
                .map(|ip| provider.dialer(&node.vm_name, &ip)),
            pinned: ssh::Pins::of(known.pinned(&node.vm_name)),
            key: key.clone(),
            command: RunAs::of(args.user.as_deref(), &node.login.user)
                .command(&node.vm_name, &args.command.join(" ")),
            stdin: stdin[index].take(),
            timeout: args.timeout.map(Duration::from_secs),
        })
        .collect();
    let results: Vec<ExecResult> = runtime()?
        .block_on(fanout::each(jobs, args.parallel, move |job| job.run(show)))
        .into_iter()
        .flatten()
        .collect();
    Ok(exec_recap(&results, args.file.json))
}

/// How `exec` shows each node's output as it comes.
#[derive(Clone, Copy)]
struct Shown {
    colour: bool,
    /// Whether stdout and stderr are terminals: guest text shown there is made printable.
    terminal: (bool, bool),
    width: usize,
    json: bool,
}

impl ExecJob {
    async fn run(mut self, show: Shown) -> ExecResult {
        let stdin = self.stdin.take();
        let started = Instant::now();
        let mut result = ExecResult {
            node: self.vm.clone(),
            exit_code: None,
            stdout: String::new(),
            stderr: String::new(),
            stdout_dropped_bytes: 0,
            stderr_dropped_bytes: 0,
            error: None,
            seconds: 0.0,
        };
        let prefix = prefix(&self.vm, self.index, show);
        let mut print = |stream: ssh::Stream, line: &str| {
            if !show.json {
                print_line(&prefix, stream, line, show);
            }
            ssh::Reply::Nothing
        };
        let ran = match self.dialer.clone() {
            Ok(dialer) => run_one(&self, stdin, dialer.as_ref(), &mut print).await,
            Err(e) => Err(e),
        };
        match ran {
            Ok(output) => {
                result.exit_code = output.status;
                result.stdout = output.stdout_text();
                result.stderr = output.stderr_text();
                (result.stdout_dropped_bytes, result.stderr_dropped_bytes) = output.dropped;
            }
            Err(e) => result.error = Some(e),
        }
        result.seconds = started.elapsed().as_secs_f64();
        if let (Some(e), false) = (&result.error, show.json) {
            print_line(&prefix, ssh::Stream::Stderr, &format!("error: {e}"), show);
        }
        result
    }
}

/// The recap of `exec` (a table on stderr, or one JSON object), and its exit.
fn exec_recap(results: &[ExecResult], json: bool) -> Exit {
    let failed = results.iter().filter(|r| r.exit_code != Some(0)).count();
    let exit = Exit::for_results(failed, results.len());
    if json {
        out(&serde_json::json!({ "results": results, "exit_code": exit.code() }).to_string());
        return exit;
    }
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.node.clone(),
                match (&r.error, r.exit_code) {
                    (Some(_), _) => "error".into(),
                    (None, Some(c)) => c.to_string(),
                    (None, None) => "killed".into(),
                },
                format!("{:.1}s", r.seconds),
                r.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    eprintln!("{}", ui::table(&["NODE", "EXIT", "TIME", "ERROR"], &rows));
    eprintln!(
        "exec: {} of {} node(s) exited 0",
        results.len() - failed,
        results.len()
    );
    exit
}

/// A node's name before each of its lines (coloured on a terminal).
fn prefix(vm: &str, index: usize, show: Shown) -> String {
    let width = show.width;
    if show.colour {
        format!("\x1b[{}m{vm:<width$}\x1b[0m |", node_colour(index))
    } else {
        format!("{vm:<width$} |")
    }
}

/// One line of a node's output, after its name, on the stream it came on; made printable
/// when that stream is a terminal.
fn print_line(prefix: &str, stream: ssh::Stream, line: &str, show: Shown) {
    let (terminal, mut out): (bool, Box<dyn Write>) = match stream {
        ssh::Stream::Stdout => (show.terminal.0, Box::new(std::io::stdout().lock())),
        ssh::Stream::Stderr => (show.terminal.1, Box::new(std::io::stderr().lock())),
    };
    let line = if terminal {
        crate::text::printable(line, ssh::LINE_CAP + 64)
    } else {
        std::borrow::Cow::Borrowed(line)
    };
    let _ = writeln!(out, "{prefix} {line}");
}

#[cfg(test)]
mod tests {
    use super::command_marked;

    fn marked(line: &str) -> String {
        let words = line.split(' ').map(std::ffi::OsString::from).collect();
        let words: Vec<String> = command_marked(words)
            .into_iter()
            .map(|w| w.to_string_lossy().into_owned())
            .collect();
        words.join(" ")
    }

    #[test]
    fn the_first_word_after_the_options_selects_and_the_rest_is_the_command() {
        assert_eq!(marked("t exec all hostname"), "t exec all -- hostname");
        assert_eq!(
            marked("t exec -f lab.yaml --user root --json all ls -la"),
            "t exec -f lab.yaml --user root --json all -- ls -la"
        );
        assert_eq!(marked("t exec -uroot all id"), "t exec -uroot all -- id");
        assert_eq!(
            marked("t exec --timeout=5 all id"),
            "t exec --timeout=5 all -- id"
        );
        // Unchanged: `--` given, no command, help, another command.
        for line in [
            "t exec a b --json -- id",
            "t exec all",
            "t exec all --help",
            "t ssh exec id",
            "t up exec",
        ] {
            assert_eq!(marked(line), line);
        }
    }
}
