//! `tartlab forward NODE [LOCAL:]REMOTE` (issue 33) through the binary against tart-sim: a
//! client on the host reaches a server on the guest through it, both ways; a port nothing
//! listens on is reported and the forward goes on; a dropped connection is mended once;
//! signals end it with 0; wrong nodes and ports fail as `ssh` and clap do.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::support::Lab;

const ONE: &str = "lab: fwd\nclusters:\n  - name: dev\n    nodes: [{ name: vm }]\n";

/// A guest-side server on 127.0.0.1 (a free port, written to /tmp/port once it listens):
/// each connection gets the guest's hostname, a colon, and what it sent up to a newline.
const SERVER: &str = r#"import os, socket, threading
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
def serve(c):
    data = b""
    while not data.endswith(b"\n"):
        chunk = c.recv(65536)
        if not chunk:
            break
        data += chunk
    c.sendall(socket.gethostname().encode() + b":" + data)
    c.close()
with open("/tmp/port.new", "w") as f:
    f.write(str(s.getsockname()[1]))
os.rename("/tmp/port.new", "/tmp/port")
while True:
    threading.Thread(target=serve, args=(s.accept()[0],)).start()
"#;

/// Brings the one-node lab up and starts `SERVER` on it; its port.
fn lab_with_a_server() -> (Lab, u16) {
    let lab = Lab::new(ONE);
    lab.up_all_ok(1);
    lab.write("server.py", SERVER);
    lab.ok(&["cp", "server.py", "dev-vm:"]);
    let start = "setsid python3 server.py </dev/null >/dev/null 2>&1 & \
                 while [ ! -e /tmp/port ]; do sleep 0.05; done; cat /tmp/port";
    let out = lab.ok(&["exec", "dev-vm", "--json", "--", start]);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let port = json["results"][0]["stdout"]
        .as_str()
        .unwrap()
        .trim()
        .parse();
    (lab, port.unwrap_or_else(|e| panic!("{e}: {}", out.stdout)))
}

/// A running `tartlab forward`, its stderr (and stdout) read line by line as they come.
struct Forward {
    child: Child,
    stderr: Receiver<String>,
    stdout: Receiver<String>,
    seen: Vec<String>,
}

fn lines_of(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

impl Forward {
    fn start(lab: &Lab, args: &[&str]) -> Forward {
        let mut child = lab
            .command(&[&["forward"], args].concat())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Forward {
            stderr: lines_of(child.stderr.take().unwrap()),
            stdout: lines_of(child.stdout.take().unwrap()),
            child,
            seen: Vec::new(),
        }
    }

    /// The next line of `from` that `wanted` accepts; fails if the forward ends first. The
    /// deadline only keeps a broken run from hanging the suite.
    fn wait(&mut self, stdout: bool, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let from = if stdout { &self.stdout } else { &self.stderr };
            let left = deadline.saturating_duration_since(Instant::now());
            match from.recv_timeout(left) {
                Ok(line) if wanted(&line) => return line,
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Timeout) => panic!("no {what}; seen: {:?}", self.seen),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "the forward ended ({:?}) before {what}; seen: {:?}",
                    self.child.wait(),
                    self.seen
                ),
            }
        }
    }

    /// The local port of the "Forwarding 127.0.0.1:PORT -> NODE:REMOTE" line.
    fn listening(&mut self) -> u16 {
        let line = self.wait(false, "listening line", |l| l.starts_with("Forwarding "));
        let port = line
            .strip_prefix("Forwarding 127.0.0.1:")
            .and_then(|rest| rest.split_once(' '))
            .map(|(port, _)| port.parse().unwrap());
        port.unwrap_or_else(|| panic!("{line}"))
    }

    fn signal(&self, signal: i32) {
        // SAFETY: signalling our own child.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    /// Its exit code, within 20 s.
    fn exit_code(&mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "the forward did not end");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every stderr line it printed until it ended.
    fn rest_of_stderr(&mut self) -> Vec<String> {
        let mut all = std::mem::take(&mut self.seen);
        all.extend(self.stderr.iter());
        all
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `text` and a newline through the forward; what came back until it closed.
fn try_exchange(port: u16, text: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    stream.write_all(text)?;
    stream.write_all(b"\n")?;
    let mut back = Vec::new();
    stream.read_to_end(&mut back)?;
    Ok(back)
}

fn exchange(port: u16, text: &[u8]) -> Vec<u8> {
    try_exchange(port, text).unwrap()
}

/// Ports nothing listens on now (the guests share the host's loopback in tart-sim).
fn free_ports() -> (u16, u16) {
    let listen = || std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (a, b) = (listen(), listen());
    let port = |l: &std::net::TcpListener| l.local_addr().unwrap().port();
    (port(&a), port(&b))
}

#[test]
fn forward_carries_bytes_both_ways_reports_a_refused_port_and_stops_at_a_signal() {
    let (lab, port) = lab_with_a_server();
    let mut forward = Forward::start(&lab, &["dev-vm", &format!("0:{port}")]);
    let local = forward.listening();
    assert_ne!(local, 0);
    assert_eq!(exchange(local, b"ping"), b"dev-vm:ping\n");
    // Several connections at once, one of them larger than an SSH window.
    let big: Vec<u8> = (0..3 * 1024 * 1024)
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    let clients: Vec<_> = [big.clone(), b"two".to_vec(), b"three".to_vec()]
        .into_iter()
        .map(|text| std::thread::spawn(move || (exchange(local, &text), text)))
        .collect();
    for client in clients {
        let (back, text) = client.join().unwrap();
        assert_eq!(back, [&b"dev-vm:"[..], &text, b"\n"].concat());
    }

    // LOCAL defaults to REMOTE: here the guest's server holds it (tart-sim's guests share
    // the host's loopback), so the forward cannot listen and says what to do.
    let taken = lab.tartlab(&["forward", "dev-vm", &port.to_string()]);
    assert_eq!(taken.code, 1, "{}", taken.stderr);
    assert!(
        taken
            .stderr
            .contains(&format!("cannot listen on 127.0.0.1:{port} for dev-vm"))
            && taken.stderr.contains("another program holds that port")
            && taken.stderr.contains(&format!(
                "`tartlab forward dev-vm 0:{port}` picks a free one"
            )),
        "{}",
        taken.stderr
    );

    // Nothing listens there: each connection is closed and said, the forward goes on.
    let (near, dead) = free_ports();
    let mut refused = Forward::start(&lab, &["--json", "dev-vm", &format!("{near}:{dead}")]);
    let event = refused.wait(true, "listening event", |l| l.contains("listening"));
    let event: serde_json::Value = serde_json::from_str(&event).unwrap();
    assert_eq!(event["node"], "dev-vm");
    assert_eq!(event["remote_port"], dead);
    assert_eq!(event["local_port"], near);
    for _ in 0..2 {
        match try_exchange(near, b"anyone?") {
            Ok(back) => assert_eq!(back, b""),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
        let said = refused.wait(false, "refusal", |l| l.contains("refused"));
        assert!(
            said.contains(&format!("nothing listens on port {dead} of dev-vm"))
                && said.contains("still forwarding"),
            "{said}"
        );
        let event = refused.wait(true, "refused event", |l| l.contains("refused"));
        assert!(event.contains(&dead.to_string()), "{event}");
    }
    refused.signal(libc::SIGTERM);
    assert_eq!(refused.exit_code(), 0, "{:?}", refused.rest_of_stderr());

    // The first forward served on while the other came and went; Ctrl-C ends it with 0.
    assert_eq!(exchange(local, b"still"), b"dev-vm:still\n");
    forward.signal(libc::SIGINT);
    assert_eq!(forward.exit_code(), 0, "{:?}", forward.rest_of_stderr());
    assert!(
        TcpStream::connect(("127.0.0.1", local)).is_err(),
        "the port is let go"
    );
}

#[test]
fn forward_logs_in_again_once_when_the_connection_drops_and_exits_when_it_cannot() {
    let (lab, port) = lab_with_a_server();
    let mut forward = Forward::start(&lab, &["dev-vm", &format!("0:{port}")]);
    let local = forward.listening();
    assert_eq!(exchange(local, b"before"), b"dev-vm:before\n");
    // Every SSH session of the guest ends (the forward's among them); sshd still listens.
    // Delayed, so that the `exec` that asks for it has returned.
    let later =
        |what: &str| format!("setsid sh -c 'sleep 0.5; {what}' </dev/null >/dev/null 2>&1 &");
    lab.ok(&[
        "exec",
        "dev-vm",
        "--",
        &later("sudo pkill -P $(pgrep -o -x sshd)"),
    ]);
    forward.wait(false, "the drop", |l| l.contains("dropped"));
    forward.wait(false, "the second login", |l| {
        l.contains("logged in to dev-vm again")
    });
    assert_eq!(exchange(local, b"after"), b"dev-vm:after\n");
    // Now sshd itself goes: the second login fails and the forward says why.
    lab.ok(&["exec", "dev-vm", "--", &later("sudo pkill -x sshd")]);
    assert_eq!(forward.exit_code(), 1);
    let said = forward.rest_of_stderr().join("\n");
    assert!(
        said.contains("error: the SSH connection dropped and cannot log in again to dev-vm")
            && said.contains("`tartlab status` shows whether dev-vm runs"),
        "{said}"
    );
}

#[test]
fn forward_refuses_unknown_nodes_nodes_not_up_and_bad_ports_as_ssh_and_clap_do() {
    let lab = Lab::new(ONE);
    let unknown = lab.tartlab(&["forward", "dev-mv", "80"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown
            .stderr
            .contains("`dev-mv` matches no node of the lab (did you mean `dev-vm`?)"),
        "{}",
        unknown.stderr
    );
    let not_up = lab.tartlab(&["forward", "dev-vm", "80"]);
    let ssh = lab.tartlab(&["ssh", "dev-vm", "true"]);
    assert_eq!(not_up.code, 1, "{}", not_up.stderr);
    assert_eq!(not_up.stderr, ssh.stderr, "the same words as ssh");
    assert!(
        not_up
            .stderr
            .contains("dev-vm has not been created by this lab: `tartlab up dev-vm` makes it"),
        "{}",
        not_up.stderr
    );
    for bad in ["http", "0", "8080:80:80", "70000"] {
        let out = lab.tartlab(&["forward", "dev-vm", bad]);
        assert_eq!(out.code, 2, "{bad}: {}", out.stderr);
        assert!(
            out.stderr.contains("[LOCAL:]REMOTE") && out.stderr.contains(bad),
            "{bad}: {}",
            out.stderr
        );
    }
}
