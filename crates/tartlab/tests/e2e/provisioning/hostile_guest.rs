//! A hostile guest during provisioning gets nothing: its output is bounded in memory, state
//! and logs; uploads wait private on the guest and never stay behind; files written into a
//! named directory never go through a link it planted; a failing ready probe's output is
//! escaped and bounded. Each test plays the attack through the binary (docs/RELIABILITY.md,
//! "A hostile guest").

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{one_vm_lab, Lab, ONE_VM};

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

#[test]
fn guest_output_is_bounded_in_memory_state_and_logs() {
    // A step leaves an output, then goes away: its value leaves the state with it.
    let lab = Lab::new(&one_vm_lab(
        "provision:\n  - name: old\n    run: echo 'tartlab-output gone=x'\n    outputs: [gone]\n",
    ));
    lab.up_all_ok(1);
    assert_eq!(lab.state()["vms"][ONE_VM]["outputs"]["gone"], "x");
    let state_file = lab.lab.join(".tartlab/state.json");
    let log = lab.lab.join(".tartlab/logs/dev-vm.provision.log");
    let size = |path: &Path| std::fs::metadata(path).unwrap().len();

    // One 20 MB output line: the step fails, saying the limit; nothing keeps the 20 MB.
    lab.write(
        "tartlab.yaml",
        &one_vm_lab(
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
        lab.state()["vms"][ONE_VM]["outputs"].get("gone").is_none(),
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
        &one_vm_lab(
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
fn uploads_wait_private_on_the_guest_and_never_stay_behind() {
    let lab = Lab::new(&one_vm_lab(
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
        .arg(format!("admin@{}", lab.ip(ONE_VM)))
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
    let staged = lab.as_root(
        ONE_VM,
        "cd ~admin && stat -c '%a %U %n' .tartlab-upload.* .tartlab-upload.*/*",
    );
    let modes: Vec<&str> = staged.lines().map(|l| &l[..9]).collect();
    assert_eq!(modes, ["700 admin", "600 admin"], "{staged}");
    holder.stdin.take().unwrap().write_all(b"go\n").unwrap();
    holder.wait().unwrap();
    assert!(up.wait().unwrap().success());
    assert_eq!(lab.as_root(ONE_VM, "cat /etc/app.conf"), "two\n");
    let left = lab.ssh(ONE_VM, "ls -d ~/.tartlab-upload.*");
    assert_ne!(left.code, 0, "staging left behind: {}", left.stdout);

    // A file that cannot be put in place (no such owner) leaves nothing staged either.
    lab.write(
        "tartlab.yaml",
        &one_vm_lab(
            "files:\n  - { src: app.conf, dest: /etc/app.conf, owner: nosuchuser, on: all }\n",
        ),
    );
    let up = lab.tartlab(&["up"]);
    assert_eq!(up.code, 1, "{}", up.stderr);
    let left = lab.ssh(ONE_VM, "ls -d ~/.tartlab-upload.*");
    assert_ne!(left.code, 0, "staging left behind: {}", left.stdout);
}

#[test]
fn files_written_into_a_named_directory_never_go_through_a_planted_link() {
    let lab = Lab::new(&one_vm_lab(""));
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
    let lab = Lab::new(&one_vm_lab(
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
