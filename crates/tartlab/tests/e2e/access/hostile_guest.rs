//! A hostile guest gets nothing through `ssh`, `exec` and `cp`: each test plays an attack
//! that got through once (issue 19, docs/RELIABILITY.md "A hostile guest") and checks what a
//! user would see: the command's exit and message, the files on the host, the files on the
//! guest.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{one_vm_lab, Lab, Out, ONE_VM};

/// Runs a command that must end by itself: a guard (far above any deadline under test)
/// kills it and fails the test if it hangs.
fn finishes(mut cmd: Command, limit: Duration) -> Out {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(child.wait_with_output());
    });
    match receive.recv_timeout(limit) {
        Ok(output) => output.unwrap().into(),
        Err(_) => {
            // SAFETY: killing the child this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{cmd:?} still ran after {} s", limit.as_secs());
        }
    }
}

/// Files named `name` anywhere under `dir`.
fn find_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_name() == name {
                found.push(path.clone());
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(path);
            }
        }
    }
    found
}

/// Runs a command as root on the node (with the lab key) and returns its stdout.
/// Until the node's sshd answers again (after a reload), by trying it.
fn wait_for_sshd(lab: &Lab) {
    for _ in 0..200 {
        if lab.ssh(ONE_VM, "true").code == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("sshd did not come back");
}

/// OpenSSH's sftp-server behind a proxy that renames entries of its listings: the guest's
/// SFTP server answers a directory listing with names that are not one path component.
const SFTP_PROXY: &str = r#"#!/usr/bin/python3
import os, struct, subprocess, sys, threading
RENAMES = {b"evil-up": b"../../../escaped-by-guest.txt", b"evil-dots": b"x/.."}
server = subprocess.Popen(["/usr/lib/openssh/sftp-server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
def exactly(stream, n):
    data = b""
    while len(data) < n:
        more = stream.read(n - len(data))
        if not more:
            return None
        data += more
    return data
def forward():
    # Requests for a renamed entry reach the real one, so that the lie holds up.
    while True:
        head = exactly(sys.stdin.buffer, 4)
        body = head and exactly(sys.stdin.buffer, struct.unpack(">I", head)[0])
        if not body:
            server.stdin.close()
            return
        if body[0] in (3, 7, 11, 16, 17):  # OPEN, LSTAT, OPENDIR, REALPATH, STAT
            path, at = string(body, 5)
            for real, fake in RENAMES.items():
                path = path.replace(fake, real)
            body = body[:5] + struct.pack(">I", len(path)) + path + body[at:]
        server.stdin.write(struct.pack(">I", len(body)) + body)
        server.stdin.flush()
def string(body, at):
    (n,) = struct.unpack(">I", body[at:at + 4])
    return body[at + 4:at + 4 + n], at + 4 + n
def attrs_end(body, at):
    (flags,) = struct.unpack(">I", body[at:at + 4])
    at += 4
    at += 8 if flags & 1 else 0
    at += 8 if flags & 2 else 0
    at += 4 if flags & 4 else 0
    at += 8 if flags & 8 else 0
    if flags & 0x80000000:
        (count,) = struct.unpack(">I", body[at:at + 4])
        at += 4
        for _ in range(2 * count):
            _, at = string(body, at)
    return at
def rewrite(body):
    (count,) = struct.unpack(">I", body[5:9])
    out, at = body[:9], 9
    for _ in range(count):
        name, at = string(body, at)
        long, at = string(body, at)
        end = attrs_end(body, at)
        new = RENAMES.get(name, name)
        out += struct.pack(">I", len(new)) + new + struct.pack(">I", len(long)) + long + body[at:end]
        at = end
    return out
threading.Thread(target=forward, daemon=True).start()
while True:
    head = exactly(server.stdout, 4)
    body = head and exactly(server.stdout, struct.unpack(">I", head)[0])
    if not body:
        sys.exit(0)
    if body[0] == 104:  # SSH_FXP_NAME
        body = rewrite(body)
    sys.stdout.buffer.write(struct.pack(">I", len(body)) + body)
    sys.stdout.buffer.flush()
"#;

#[test]
fn cp_from_a_guest_never_writes_outside_its_destination() {
    let lab = Lab::new(&one_vm_lab(""));
    lab.up_all_ok(1);
    lab.write("sftp-proxy", SFTP_PROXY);
    lab.ok(&["cp", "sftp-proxy", &format!("{ONE_VM}:/tmp/sftp-proxy")]);
    lab.as_root(ONE_VM, "install -m 755 /tmp/sftp-proxy /usr/local/bin/sftp-proxy && sed -i 's|^Subsystem.*|Subsystem sftp /usr/local/bin/sftp-proxy|' /etc/ssh/sshd_config && kill -HUP $(cat /run/sshd.pid)",
    );
    wait_for_sshd(&lab);
    // Directories listed as `x/..`, three deep, with a file at the bottom: each level
    // would climb one directory up from the destination.
    let made = lab.ssh(
        ONE_VM,
        "mkdir -p loot/sub loot/evil-dots/evil-dots/evil-dots && echo fine > loot/ok.txt && echo deep > loot/sub/deep.txt && echo pwned > loot/evil-dots/evil-dots/evil-dots/escaped-by-guest.txt",
    );
    assert_eq!(made.code, 0, "{}", made.stderr);
    let dest = lab.dir.path().join("a/b/copy");
    std::fs::create_dir_all(&dest).unwrap();
    let dest_text = dest.display().to_string();
    let source = format!("{ONE_VM}:loot");
    let cp = lab.tartlab(&["cp", "-r", &source, &dest_text]);
    let escaped = find_named(&lab.dir.path().join("a"), "escaped-by-guest.txt");
    assert!(
        escaped.is_empty(),
        "a file escaped the destination: {escaped:?}"
    );
    assert_eq!(cp.code, 1, "{}", cp.stderr);
    assert!(
        cp.stderr.contains(&format!("cp {source} {dest_text}"))
            && cp.stderr.contains(
                "the guest listed an entry named \"x/..\" in loot: a name must be one path component, so the copy stopped there"
            ),
        "{}",
        cp.stderr
    );

    // An entry named `../../../escaped-by-guest.txt`: refused the same way.
    assert_eq!(
        lab.ssh(ONE_VM, "rm -r loot/evil-dots && echo pwned > loot/evil-up")
            .code,
        0
    );
    let cp = lab.tartlab(&["cp", "-r", &source, &dest_text]);
    assert!(find_named(&lab.dir.path().join("a"), "escaped-by-guest.txt").is_empty());
    assert!(!Path::new("/escaped-by-guest.txt").exists());
    assert_eq!(cp.code, 1, "{}", cp.stderr);
    assert!(
        cp.stderr
            .contains("an entry named \"../../../escaped-by-guest.txt\" in loot"),
        "{}",
        cp.stderr
    );

    // Plain names copy; the guest's link to /etc/shadow is listed as skipped, not followed.
    assert_eq!(
        lab.ssh(ONE_VM, "rm loot/evil-up && ln -s /etc/shadow loot/link")
            .code,
        0
    );
    let cp = lab.tartlab(&["cp", "-r", &source, &dest_text]);
    assert_eq!(cp.code, 0, "{}", cp.stderr);
    assert!(
        cp.stderr.contains("not copied: loot/link: a symbolic link"),
        "{}",
        cp.stderr
    );
    assert!(cp.stderr.contains("copied 2 file(s)"), "{}", cp.stderr);
    assert_eq!(
        std::fs::read_to_string(dest.join("loot/ok.txt")).unwrap(),
        "fine\n"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("loot/sub/deep.txt")).unwrap(),
        "deep\n"
    );
    assert!(std::fs::symlink_metadata(dest.join("loot/link")).is_err());
}

#[test]
fn a_login_that_never_ends_cannot_hang_up_exec_or_stop() {
    let lab = Lab::new(&one_vm_lab(""));
    lab.up_all_ok(1);
    // Every login now waits in PAM's account stack (key logins too), for ten minutes.
    lab.as_root(ONE_VM, "printf '#!/bin/sh\\nsleep 600\\n' > /usr/local/bin/slow-login && chmod 755 /usr/local/bin/slow-login && sed -i '1i account required pam_exec.so /usr/local/bin/slow-login' /etc/pam.d/sshd",
    );
    let limit = Duration::from_secs(90);
    let with = |args: &[&str], var: &str| {
        let mut cmd = lab.command(args);
        cmd.env(var, "3");
        finishes(cmd, limit)
    };

    let exec = with(&["exec", "all", "--", "true"], "TARTLAB_SSH_TIMEOUT");
    assert_eq!(exec.code, 1, "{}\n{}", exec.stdout, exec.stderr);
    assert!(
        exec.stderr
            .contains("sshd answered but the login did not finish within 3 s"),
        "{}",
        exec.stderr
    );

    // A new step needs a login: `up` gives up at stage ssh.
    lab.write(
        "tartlab.yaml",
        &one_vm_lab("provision:\n  - name: more\n    run: echo more\n"),
    );
    let up = with(&["up"], "TARTLAB_SSH_TIMEOUT");
    assert_eq!(up.code, 1, "{}\n{}", up.stdout, up.stderr);
    assert!(
        up.stderr.contains("dev-vm failed at stage `ssh`")
            && up
                .stderr
                .contains("sshd answered but the login did not finish within")
            && up.stderr.contains("something in the guest's login"),
        "{}",
        up.stderr
    );

    // `stop` tries the guest's own shutdown for its stop timeout, then tart's stop.
    let stop = with(&["stop"], "TARTLAB_STOP_TIMEOUT");
    assert_eq!(stop.code, 0, "{}\n{}", stop.stdout, stop.stderr);
    assert_eq!(lab.vms(), vec![(ONE_VM.to_string(), false)]);
}

#[test]
fn guest_text_cannot_drive_the_terminal_but_logs_keep_the_bytes() {
    let lab = Lab::new(&one_vm_lab(
        "provision:\n  - name: noisy\n    run: |\n      printf 'before\\033]0;pwned\\007\\033[2J\\000after\\n'\n      exit 4\n",
    ));
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 1, "{}", up.stderr);
    assert!(
        up.stderr
            .contains(r"before\x1b]0;pwned\x07\x1b[2J\x00after"),
        "{}",
        up.stderr
    );
    for raw in ['\x1b', '\x07', '\0'] {
        assert!(
            !up.stderr.contains(raw) && !up.stdout.contains(raw),
            "{raw:?} reached the output"
        );
    }
    // Piped, `logs` gives the bytes as the guest wrote them.
    let logs = lab.ok(&["logs", ONE_VM]);
    assert!(
        logs.stdout.contains("before\x1b]0;pwned\x07"),
        "{}",
        logs.stdout
    );

    // On a terminal, `logs` and `exec` show them escaped.
    let on_terminal = |args: &str| {
        let mut script = Command::new("script");
        lab.env(&mut script);
        script.env("NO_COLOR", "1").args([
            "-qec",
            &format!("{} {args}", env!("CARGO_BIN_EXE_tartlab")),
            "/dev/null",
        ]);
        let out = finishes(script, Duration::from_secs(60));
        out.stdout
    };
    for args in [
        format!("logs {ONE_VM}"),
        r#"exec all -- "printf '\033]0;pwned\007\n'""#.to_string(),
    ] {
        let screen = on_terminal(&args);
        assert!(screen.contains(r"\x1b]0;pwned\x07"), "{args}: {screen}");
        assert!(!screen.contains("\x1b]0;pwned"), "{args}: raw escape shown");
    }
}

/// Runs tartlab in `dir` (another lab directory than the harness's).
fn tartlab_in(lab: &Lab, dir: &Path, args: &[&str]) -> Out {
    lab.command(args).current_dir(dir).output().unwrap().into()
}

#[test]
fn a_lab_directory_s_name_never_writes_ssh_options_and_a_percent_reaches_ssh_as_written() {
    let lab = Lab::new(&one_vm_lab(""));
    // A cloned repository chooses its directory names: this one would add a ProxyCommand.
    let evil = lab
        .dir
        .path()
        .join("evil\"\n  ProxyCommand sh -c \"touch PWNED\" #");
    std::fs::create_dir_all(&evil).unwrap();
    std::fs::write(evil.join("tartlab.yaml"), one_vm_lab("")).unwrap();
    for args in [&["ssh-config"][..], &["inventory"], &["inventory", "--ini"]] {
        let out = tartlab_in(&lab, &evil, args);
        assert_eq!(out.code, 1, "{args:?}: {}\n{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains(r#"cannot write the path ""#)
                && out
                    .stderr
                    .contains(r#"evil\"\n  ProxyCommand sh -c \"touch PWNED\" #"#)
                && out.stderr.contains("it holds a control character"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(!out.stdout.contains("ProxyCommand"), "{}", out.stdout);
    }

    // `%` (ssh expands `%h` to the host name there) and a space: written so ssh reads the
    // lab's own files, in the config, in `tartlab ssh` and in the inventory.
    let odd = lab.dir.path().join("100%h of a lab");
    std::fs::create_dir_all(&odd).unwrap();
    std::fs::write(odd.join("tartlab.yaml"), one_vm_lab("")).unwrap();
    let up = tartlab_in(&lab, &odd, &["up"]);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    let config = tartlab_in(&lab, &odd, &["ssh-config"]);
    assert_eq!(config.code, 0, "{}", config.stderr);
    let file = lab.dir.path().join("ssh_config");
    std::fs::write(&file, &config.stdout).unwrap();
    let resolved = Command::new("ssh")
        .args(["-G", "-F", file.to_str().unwrap(), ONE_VM])
        .output()
        .unwrap();
    let known = odd.join(".tartlab/known_hosts");
    assert!(
        String::from_utf8_lossy(&resolved.stdout)
            .lines()
            .any(|l| l == format!("userknownhostsfile {}", known.display())),
        "{}\n{}",
        config.stdout,
        String::from_utf8_lossy(&resolved.stdout)
    );
    let login = Command::new("ssh")
        .args([
            "-F",
            file.to_str().unwrap(),
            "-o",
            "BatchMode=yes",
            ONE_VM,
            "hostname",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&login.stdout),
        "dev-vm\n",
        "the lab key and pinned key, read through the config: {}",
        String::from_utf8_lossy(&login.stderr)
    );
    let ssh = tartlab_in(&lab, &odd, &["ssh", ONE_VM, "hostname"]);
    assert_eq!(ssh.code, 0, "{}", ssh.stderr);
    assert_eq!(ssh.stdout, "dev-vm\n");
    let ini = tartlab_in(&lab, &odd, &["inventory", "--ini"]);
    assert_eq!(ini.code, 0, "{}", ini.stderr);
    assert!(
        ini.stdout.contains(&format!(
            "ansible_ssh_private_key_file='{}'",
            odd.join(".tartlab/id_ed25519")
                .display()
                .to_string()
                .replace('%', "%%")
        )),
        "{}",
        ini.stdout
    );
}

#[test]
fn cp_sends_nothing_to_a_vm_whose_host_key_is_not_pinned() {
    let lab = Lab::new(&one_vm_lab(""));
    lab.up_all_ok(1);
    assert_eq!(lab.ssh(ONE_VM, "echo on-guest > guest.txt").code, 0);
    lab.write("upload.txt", "from the host\n");
    // What the host-key-changed hint tells the user to do: the VM's lines removed.
    let known = lab.lab.join(".tartlab/known_hosts");
    let pinned = std::fs::read_to_string(&known).unwrap();
    let others: String = pinned
        .lines()
        .filter(|l| !l.starts_with(&format!("{ONE_VM} ")))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&known, others).unwrap();

    let upload = lab.tartlab(&["cp", "upload.txt", &format!("{ONE_VM}:uploaded.txt")]);
    let download = lab.tartlab(&["cp", &format!("{ONE_VM}:guest.txt"), "downloaded.txt"]);
    let exec = lab.tartlab(&["exec", "all", "--", "true"]);
    for (what, out) in [
        ("upload", &upload),
        ("download", &download),
        ("exec", &exec),
    ] {
        assert_eq!(out.code, 1, "{what}: {}\n{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("no host key is pinned for this VM"),
            "{what}: {}",
            out.stderr
        );
    }
    for out in [&upload, &download] {
        assert!(
            out.stderr
                .contains("`tartlab stop dev-vm` then `tartlab up`"),
            "{}",
            out.stderr
        );
    }
    assert!(!lab.lab.join("downloaded.txt").exists());

    // With the key pinned again, the guest shows nothing was uploaded; then cp works.
    std::fs::write(&known, &pinned).unwrap();
    assert_eq!(lab.ssh(ONE_VM, "test ! -e uploaded.txt").code, 0);
    lab.ok(&["cp", &format!("{ONE_VM}:guest.txt"), "downloaded.txt"]);
    assert_eq!(
        std::fs::read_to_string(lab.lab.join("downloaded.txt")).unwrap(),
        "on-guest\n"
    );
}
