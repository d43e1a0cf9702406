//! A hostile guest (and a hostile neighbour of `.tartlab/`) gets nothing: each test plays an
//! attack that got through once (issue 19, docs/RELIABILITY.md "A hostile guest") and checks
//! what a user would see: the command's exit and message, the files on the host, the files
//! on the guest.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Lab, Out};

const VM: &str = "dev-vm";

fn one_node(extra: &str) -> String {
    format!("lab: hostile\nclusters:\n  - name: dev\n    nodes: [{{ name: vm }}]\n{extra}")
}

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

/// The largest resident set of any process this test has waited for (tartlab and the tart
/// commands it waited for), in MB.
fn peak_rss_of_children_mb() -> i64 {
    // SAFETY: getrusage writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) },
        0
    );
    usage.ru_maxrss / 1024
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
fn as_root(lab: &Lab, command: &str) -> String {
    let quoted = format!("'{}'", command.replace('\'', r"'\''"));
    let out = lab.ssh(VM, &format!("sudo sh -c {quoted}"));
    assert_eq!(out.code, 0, "{command}: {}", out.stderr);
    out.stdout
}

/// Until the node's sshd answers again (after a reload), by trying it.
fn wait_for_sshd(lab: &Lab) {
    for _ in 0..200 {
        if lab.ssh(VM, "true").code == 0 {
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
    let lab = Lab::new(&one_node(""));
    lab.up_all_ok(1);
    lab.write("sftp-proxy", SFTP_PROXY);
    lab.ok(&["cp", "sftp-proxy", &format!("{VM}:/tmp/sftp-proxy")]);
    as_root(
        &lab,
        "install -m 755 /tmp/sftp-proxy /usr/local/bin/sftp-proxy && sed -i 's|^Subsystem.*|Subsystem sftp /usr/local/bin/sftp-proxy|' /etc/ssh/sshd_config && kill -HUP $(cat /run/sshd.pid)",
    );
    wait_for_sshd(&lab);
    // Directories listed as `x/..`, three deep, with a file at the bottom: each level
    // would climb one directory up from the destination.
    let made = lab.ssh(
        VM,
        "mkdir -p loot/sub loot/evil-dots/evil-dots/evil-dots && echo fine > loot/ok.txt && echo deep > loot/sub/deep.txt && echo pwned > loot/evil-dots/evil-dots/evil-dots/escaped-by-guest.txt",
    );
    assert_eq!(made.code, 0, "{}", made.stderr);
    let dest = lab.dir.path().join("a/b/copy");
    std::fs::create_dir_all(&dest).unwrap();
    let dest_text = dest.display().to_string();
    let source = format!("{VM}:loot");
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
        lab.ssh(VM, "rm -r loot/evil-dots && echo pwned > loot/evil-up")
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
        lab.ssh(VM, "rm loot/evil-up && ln -s /etc/shadow loot/link")
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
    let lab = Lab::new(&one_node(""));
    lab.up_all_ok(1);
    // Every login now waits in PAM's account stack (key logins too), for ten minutes.
    as_root(
        &lab,
        "printf '#!/bin/sh\\nsleep 600\\n' > /usr/local/bin/slow-login && chmod 755 /usr/local/bin/slow-login && sed -i '1i account required pam_exec.so /usr/local/bin/slow-login' /etc/pam.d/sshd",
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
        &one_node("provision:\n  - name: more\n    run: echo more\n"),
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
    assert_eq!(lab.vms(), vec![(VM.to_string(), false)]);
}

#[test]
fn guest_output_is_bounded_in_memory_state_and_logs() {
    // A step leaves an output, then goes away: its value leaves the state with it.
    let lab = Lab::new(&one_node(
        "provision:\n  - name: old\n    run: echo 'tartlab-output gone=x'\n    outputs: [gone]\n",
    ));
    lab.up_all_ok(1);
    assert_eq!(lab.state()["vms"][VM]["outputs"]["gone"], "x");
    let state_file = lab.lab.join(".tartlab/state.json");
    let log = lab.lab.join(".tartlab/logs/dev-vm.provision.log");
    let size = |path: &Path| std::fs::metadata(path).unwrap().len();

    // One 20 MB output line: the step fails, saying the limit; nothing keeps the 20 MB.
    lab.write(
        "tartlab.yaml",
        &one_node(
            "provision:\n  - name: big\n    run: |\n      printf 'tartlab-output big='\n      head -c 20000000 /dev/zero | tr '\\0' x\n      echo\n    outputs: [big]\n",
        ),
    );
    let log_before = size(&log);
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 1, "{}\n{}", up.stdout, up.stderr);
    assert!(
        up.stderr.contains(
            "step `big` printed an output `big` longer than 32 KiB, the limit for a value"
        ),
        "{}",
        up.stderr
    );
    assert!(
        up.stderr.len() < 20_000,
        "the failure quotes a bounded tail"
    );
    assert!(
        lab.state()["vms"][VM]["outputs"].get("gone").is_none(),
        "no step declares `gone` any more"
    );
    assert!(
        size(&state_file) < 20_000,
        "state.json: {} bytes",
        size(&state_file)
    );
    assert!(
        size(&log) - log_before < 200_000,
        "the log took {} bytes",
        size(&log) - log_before
    );
    let peak = peak_rss_of_children_mb();
    assert!(peak < 64, "tartlab's peak RSS was {peak} MB");

    // 50 MB of lines: the log stops at its cap and says how much more there was.
    lab.write(
        "tartlab.yaml",
        &one_node(
            "provision:\n  - name: flood\n    run: \"{ yes || true; } | head -c 50000000\"\n",
        ),
    );
    let log_before = size(&log);
    lab.up_all_ok(1);
    let logged = size(&log) - log_before;
    assert!(
        (16 << 20..17 << 20).contains(&logged),
        "the log took {logged} bytes"
    );
    let tail = String::from_utf8_lossy(&common_tail(&log, 4096)).into_owned();
    assert!(
        tail.contains("more bytes of output not logged: a command's log stops at 16 MiB"),
        "{tail}"
    );
    let peak = peak_rss_of_children_mb();
    assert!(peak < 64, "tartlab's peak RSS was {peak} MB");
}

fn common_tail(path: &Path, n: u64) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).unwrap();
    let len = file.metadata().unwrap().len();
    file.seek(SeekFrom::Start(len.saturating_sub(n))).unwrap();
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).unwrap();
    bytes
}

#[test]
fn links_planted_in_the_state_directory_are_refused_by_name_and_modes_are_private() {
    let lab = Lab::new(&one_node(""));
    let state = lab.lab.join(".tartlab");
    let victim = lab.dir.path().join("victim");
    let victim_dir = lab.dir.path().join("victim-dir");
    std::fs::create_dir_all(state.join("logs")).unwrap();
    std::fs::create_dir_all(&victim_dir).unwrap();
    for planted in [
        "lock",
        "events.jsonl",
        "state.json",
        "known_hosts",
        "id_ed25519",
        "logs/dev-vm.provision.log",
        "logs/dev-vm.run.log",
    ] {
        std::fs::write(&victim, "precious").unwrap();
        let link = state.join(planted);
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        for args in [&["up"][..], &["status"], &["logs", VM]] {
            let out = lab.tartlab(args);
            assert_eq!(out.code, 1, "{planted}, {args:?}: {}", out.stderr);
            assert!(
                out.stderr.contains(&format!(
                    ".tartlab/{planted} is a symbolic link; tartlab follows no link in its state directory"
                )),
                "{planted}, {args:?}: {}",
                out.stderr
            );
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        std::fs::remove_file(&link).unwrap();
    }
    // `logs/` itself, and `.tartlab/` itself.
    std::fs::remove_dir(state.join("logs")).unwrap();
    std::os::unix::fs::symlink(&victim_dir, state.join("logs")).unwrap();
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 1, "{}", up.stderr);
    assert!(
        up.stderr.contains("logs is a symbolic link"),
        "{}",
        up.stderr
    );
    std::fs::remove_file(state.join("logs")).unwrap();
    std::fs::remove_dir_all(&state).unwrap();
    std::os::unix::fs::symlink(&victim_dir, &state).unwrap();
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 1, "{}", up.stderr);
    assert!(
        up.stderr.contains(".tartlab is a symbolic link"),
        "{}",
        up.stderr
    );
    assert_eq!(std::fs::read_dir(&victim_dir).unwrap().count(), 0);
    assert!(lab.vms().is_empty(), "nothing was made");
    std::fs::remove_file(&state).unwrap();

    // A lab an older tartlab left open (0755, 0644) is made private by the next `up`.
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        state.join("state.json"),
        "{\"version\": 1, \"lab\": \"hostile\", \"vms\": {}}",
    )
    .unwrap();
    std::fs::set_permissions(
        state.join("state.json"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    lab.up_all_ok(1);
    lab.ok(&["ssh-config"]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    let mut files = 0;
    for dir in [state.clone(), state.join("logs")] {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                assert_eq!(mode(&path), 0o700, "{}", path.display());
            } else {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
                files += 1;
            }
        }
    }
    assert!(
        files >= 8,
        "state, lock, key, known hosts, events, logs: {files}"
    );
}

#[test]
fn uploads_wait_private_on_the_guest_and_never_stay_behind() {
    let lab = Lab::new(&one_node(
        "files:\n  - { src: app.conf, dest: /etc/app.conf, mode: \"0600\", on: all }\n",
    ));
    lab.write("app.conf", "one\n");
    lab.up_all_ok(1);
    lab.write("app.conf", "two\n");
    // Another command holds the node's provisioning lock: the files wait, staged.
    let key = lab.lab.join(".tartlab/id_ed25519");
    let mut holder = Command::new("ssh")
        .args(["-i", &key.display().to_string(), "-o", "IdentitiesOnly=yes"])
        .args(["-o", "StrictHostKeyChecking=no", "-o", "LogLevel=error"])
        .arg(format!("admin@{}", lab.ip(VM)))
        .arg("sudo flock /var/lib/tartlab/lock sh -c 'echo held; read line'")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut held = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut held,
    )
    .unwrap();
    assert_eq!(held, "held\n");
    let mut up = lab.spawn(&["up"]);
    let from = lab.events().len();
    lab.wait_for_event(&mut up, from, "the files waiting for the lock", |e| {
        e["stage"] == "files"
            && e["message"]
                .as_str()
                .is_some_and(|d| d.contains("waiting for"))
    });
    let staged = as_root(
        &lab,
        "cd ~admin && stat -c '%a %U %n' .tartlab-upload.* .tartlab-upload.*/*",
    );
    let modes: Vec<&str> = staged.lines().map(|l| &l[..9]).collect();
    assert_eq!(modes, ["700 admin", "600 admin"], "{staged}");
    holder.stdin.take().unwrap().write_all(b"go\n").unwrap();
    holder.wait().unwrap();
    assert!(up.wait().unwrap().success());
    assert_eq!(as_root(&lab, "cat /etc/app.conf"), "two\n");
    let left = lab.ssh(VM, "ls -d ~/.tartlab-upload.*");
    assert_ne!(left.code, 0, "staging left behind: {}", left.stdout);

    // A file that cannot be put in place (no such owner) leaves nothing staged either.
    lab.write(
        "tartlab.yaml",
        &one_node(
            "files:\n  - { src: app.conf, dest: /etc/app.conf, owner: nosuchuser, on: all }\n",
        ),
    );
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 1, "{}", up.stderr);
    let left = lab.ssh(VM, "ls -d ~/.tartlab-upload.*");
    assert_ne!(left.code, 0, "staging left behind: {}", left.stdout);
}

#[test]
fn a_users_links_never_make_root_write_for_them() {
    let users = |shell: &str| {
        one_node(&format!(
            "users:\n  - {{ name: devops, sudo: none, shell: {shell} }}\n"
        ))
    };
    let lab = Lab::new(&users("/bin/bash"));
    lab.up_all_ok(1);
    as_root(
        &lab,
        "echo precious > /etc/victim && chmod 644 /etc/victim && mkdir -m 755 /etc/victim-dir",
    );
    let key = lab.lab.join(".tartlab/id_ed25519");
    let as_devops = |command: &str| {
        let out = lab.ssh_with(&key, "devops", VM, command);
        assert_eq!(out.code, 0, "{command}: {}", out.stderr);
    };
    let victims = || {
        as_root(
            &lab,
            "stat -c '%U %a' /etc/victim /etc/victim-dir && cat /etc/victim && ls -A /etc/victim-dir",
        )
    };
    let untouched = "root 644\nroot 755\nprecious\n";

    // The name root used to write through.
    as_devops("ln -sf /etc/victim ~/.ssh/authorized_keys.tartlab");
    lab.write("tartlab.yaml", &users("/bin/sh"));
    lab.up_all_ok(1);
    assert_eq!(victims(), untouched);
    as_devops("true");

    // `~/.ssh` itself a link to a root directory: the user's keys cannot be written there.
    as_devops("rm -rf ~/.ssh && ln -s /etc/victim-dir ~/.ssh");
    lab.write("tartlab.yaml", &users("/bin/bash"));
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 1, "{}", up.stderr);
    assert!(
        up.stderr.contains("dev-vm failed at stage `base`"),
        "{}",
        up.stderr
    );
    assert_eq!(victims(), untouched);
}

#[test]
fn a_secret_is_masked_in_every_form_and_templates_expand_once() {
    let lab = Lab::new(&one_node(
        r#"provision:
  - name: gen
    run: |
      q="'" d='"' b='\'
      printf '%s\n' "tartlab-output tok=S3cr${q}et${d}x${b}y"
      echo 'tartlab-output plain={{ node.dev-vm.outputs.tok }}'
    outputs: [{ name: tok, secret: true }, plain]
  - name: use
    env:
      TOK: "{{ node.dev-vm.outputs.tok }}"
      PLAIN: "{{ node.dev-vm.outputs.plain }}"
    run: |
      printf '%s' "$TOK" > /tmp/tok
      printf '%s' "$PLAIN" > /tmp/plain
      echo "the token is $TOK"
"#,
    ));
    let up = lab.up_all_ok(1);
    let secret = r#"S3cr'et"x\y"#;
    assert_eq!(as_root(&lab, "cat /tmp/tok"), secret);
    assert_eq!(
        as_root(&lab, "cat /tmp/plain"),
        "{{ node.dev-vm.outputs.tok }}",
        "an output that looks like a template is passed on as printed"
    );
    let logs = lab.ok(&["logs", VM]);
    let written = lab.tartlab_files_text(&["state.json"]);
    let forms = [
        secret.to_string(),
        secret.replace('\'', r"'\''"),
        serde_json::to_string(secret)
            .unwrap()
            .trim_matches('"')
            .to_string(),
        "S3cr".to_string() + "'\\''",
    ];
    for (what, text) in [
        ("up's output", format!("{}{}", up.stdout, up.stderr)),
        ("logs", logs.stdout.clone()),
        (".tartlab/", written),
    ] {
        for form in &forms {
            assert!(
                !text.contains(form.as_str()),
                "{form} is in {what}:\n{text}"
            );
        }
    }
    assert!(
        logs.stdout.contains("export TOK='********'")
            && logs.stdout.contains("the token is ********"),
        "{}",
        logs.stdout
    );
}

#[test]
fn guest_text_cannot_drive_the_terminal_but_logs_keep_the_bytes() {
    let lab = Lab::new(&one_node(
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
    let logs = lab.ok(&["logs", VM]);
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
        format!("logs {VM}"),
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
    let lab = Lab::new(&one_node(""));
    // A cloned repository chooses its directory names: this one would add a ProxyCommand.
    let evil = lab
        .dir
        .path()
        .join("evil\"\n  ProxyCommand sh -c \"touch PWNED\" #");
    std::fs::create_dir_all(&evil).unwrap();
    std::fs::write(evil.join("tartlab.yaml"), one_node("")).unwrap();
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
    std::fs::write(odd.join("tartlab.yaml"), one_node("")).unwrap();
    let up = tartlab_in(&lab, &odd, &["up"]);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    let config = tartlab_in(&lab, &odd, &["ssh-config"]);
    assert_eq!(config.code, 0, "{}", config.stderr);
    let file = lab.dir.path().join("ssh_config");
    std::fs::write(&file, &config.stdout).unwrap();
    let resolved = Command::new("ssh")
        .args(["-G", "-F", file.to_str().unwrap(), VM])
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
            VM,
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
    let ssh = tartlab_in(&lab, &odd, &["ssh", VM, "hostname"]);
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
    let lab = Lab::new(&one_node(""));
    lab.up_all_ok(1);
    assert_eq!(lab.ssh(VM, "echo on-guest > guest.txt").code, 0);
    lab.write("upload.txt", "from the host\n");
    // What the host-key-changed hint tells the user to do: the VM's lines removed.
    let known = lab.lab.join(".tartlab/known_hosts");
    let pinned = std::fs::read_to_string(&known).unwrap();
    let others: String = pinned
        .lines()
        .filter(|l| !l.starts_with(&format!("{VM} ")))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&known, others).unwrap();

    let upload = lab.tartlab(&["cp", "upload.txt", &format!("{VM}:uploaded.txt")]);
    let download = lab.tartlab(&["cp", &format!("{VM}:guest.txt"), "downloaded.txt"]);
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
    assert_eq!(lab.ssh(VM, "test ! -e uploaded.txt").code, 0);
    lab.ok(&["cp", &format!("{VM}:guest.txt"), "downloaded.txt"]);
    assert_eq!(
        std::fs::read_to_string(lab.lab.join("downloaded.txt")).unwrap(),
        "on-guest\n"
    );
}

#[test]
fn files_written_into_a_named_directory_never_go_through_a_planted_link() {
    let lab = Lab::new(&one_node(""));
    let victim = lab.dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let mandir = lab.dir.path().join("man1");
    std::fs::create_dir_all(&mandir).unwrap();
    std::os::unix::fs::symlink(&victim, mandir.join("tartlab-up.1")).unwrap();
    let man = lab.ok(&["man", "--dir", mandir.to_str().unwrap()]);
    assert!(man.stdout.contains("wrote the man pages"), "{}", man.stdout);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let page = mandir.join("tartlab-up.1");
    assert!(!std::fs::symlink_metadata(&page)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(
        std::fs::read_to_string(&page)
            .unwrap()
            .contains(".TH tartlab-up 1"),
        "the page replaced the link"
    );

    // `init DIR` with `DIR/scripts` a link elsewhere: refused, naming it; nothing written.
    let dir = lab.dir.path().join("cluster");
    let elsewhere = lab.dir.path().join("elsewhere");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.join("scripts")).unwrap();
    let init = lab.tartlab(&["init", "--template", "k3s", dir.to_str().unwrap()]);
    assert_eq!(init.code, 1, "{}\n{}", init.stdout, init.stderr);
    assert!(
        init.stderr.contains(&format!(
            "{} is a symbolic link; init writes no file through a link",
            dir.join("scripts").display()
        )),
        "{}",
        init.stderr
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    assert!(!dir.join("tartlab.yaml").exists());
}

#[test]
fn a_failing_ready_probe_s_output_is_escaped_and_bounded() {
    let lab = Lab::new(&one_node(
        "ready:\n  - run: |\n      printf 'probe\\033]0;PWNED\\007\\033[2J\\n' >&2\n      head -c 60000 /dev/zero | tr '\\0' y\n      echo\n      exit 3\n",
    ));
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 1, "{}\n{}", up.stdout, up.stderr);
    assert!(
        up.stderr.contains("failed at stage `ready`"),
        "{}",
        up.stderr
    );
    assert!(
        up.stderr.contains(r"probe\x1b]0;PWNED\x07\x1b[2J"),
        "{}",
        up.stderr
    );
    for raw in ['\x1b', '\x07'] {
        assert!(!up.stderr.contains(raw) && !up.stdout.contains(raw));
    }
    assert!(up.stderr.len() < 20_000, "{} bytes", up.stderr.len());
}
