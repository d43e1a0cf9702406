//! Conformance of `tart run --dir` (tart 2.31's Sources/tart/Commands/Run.swift,
//! `DirectoryShare`) and of the guest side of virtiofs: `mount -t virtiofs TAG DIR` works
//! for the tags the VM was given, fails for any other as Linux does, enforces read-only,
//! and a host path that was not shared stays out of the guest's reach.

mod common;

use common::{require_root, ssh, wait_exit, wait_for_port, Sim};

const ROOT_USAGE: &str = "Usage: tart <subcommand>\n  See 'tart --help' for more information.\n";

fn vz_invalid_share(posix_code: i32, posix_text: &str) -> String {
    format!(
        "Error: Error Domain=VZErrorDomain Code=2 \"A directory sharing device configuration is invalid.\" UserInfo={{NSLocalizedFailure=Invalid virtual machine configuration., NSLocalizedFailureReason=A directory sharing device configuration is invalid., NSUnderlyingError=0x600003d5c0c0 {{Error Domain=NSPOSIXErrorDomain Code={posix_code} \"{posix_text}\"}}}}\n"
    )
}

#[test]
fn run_dir_with_a_missing_path_fails_as_virtualization_framework_refuses_it() {
    require_root();
    let sim = Sim::new();
    sim.clone_image("vm");
    let missing = sim.dir.path().join("nowhere");
    let out = sim.tart(&[
        "run",
        "vm",
        "--no-graphics",
        "--dir",
        &missing.display().to_string(),
    ]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, vz_invalid_share(2, "No such file or directory").as_str())
    );
    // A file is no directory.
    let file = sim.dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let out = sim.tart(&["run", "vm", "--dir", &file.display().to_string()]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, vz_invalid_share(20, "Not a directory").as_str())
    );
}

#[test]
fn run_dir_with_an_option_tart_does_not_know_reads_it_as_name_and_path() {
    require_root();
    let sim = Sim::new();
    sim.clone_image("vm");
    // tart takes options only from the last `:` part, and only if one of them is `ro` or
    // `tag=`; "rw" is none, so `DIR:rw` is the share named DIR at the relative path "rw".
    let dir = sim.dir.path().join("shared");
    std::fs::create_dir_all(&dir).unwrap();
    let out = sim.tart(&["run", "vm", "--dir", &format!("{}:rw", dir.display())]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, vz_invalid_share(2, "No such file or directory").as_str())
    );
}

#[test]
fn two_unnamed_shares_on_one_tag_are_a_validation_error_with_the_root_usage() {
    require_root();
    let sim = Sim::new();
    sim.clone_image("vm");
    let (a, b) = (sim.dir.path().join("a"), sim.dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let out = sim.tart(&[
        "run",
        "vm",
        "--dir",
        &a.display().to_string(),
        "--dir",
        &format!("{}:ro", b.display()),
    ]);
    assert_eq!(out.code, 64);
    assert_eq!(
        out.stderr,
        format!("Error: invalid --dir syntax: for multiple directory shares each one of them should be named\n{ROOT_USAGE}")
    );
}

#[test]
fn guest_mounts_the_tags_it_was_given_and_no_other() {
    require_root();
    let sim = Sim::new();
    let base = sim.dir.path();
    let (rw, ro, a, b, secret) = (
        base.join("rw"),
        base.join("ro"),
        base.join("a"),
        base.join("b"),
        base.join("secret"),
    );
    for d in [&rw, &ro, &a, &b, &secret] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(rw.join("from-host"), "hello from the host\n").unwrap();
    std::fs::write(ro.join("manifest.yaml"), "kind: Pod\n").unwrap();
    std::fs::write(a.join("in-a"), "a\n").unwrap();
    std::fs::write(secret.join("key"), "not for the guest\n").unwrap();
    sim.clone_image("vm");
    sim.ok(&["set", "vm", "--random-mac"]);
    let flags = [
        "--dir".to_string(),
        format!("{}:tag=work", rw.display()),
        "--dir".to_string(),
        format!("{}:ro,tag=manifests", ro.display()),
        "--dir".to_string(),
        format!("alpha:{}", a.display()),
        "--dir".to_string(),
        format!("beta:{}:ro", b.display()),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut run = sim.start_with("vm", &flags);
    let ip = sim.ok(&["ip", "vm", "--wait", "30"]).trim().to_string();
    wait_for_port(&ip);

    // A tag the VM has: mounted, both ways.
    let out = ssh(
        &ip,
        "sudo mkdir -p /srv/work && sudo mount -t virtiofs work /srv/work && cat /srv/work/from-host && echo guest | sudo tee /srv/work/from-guest >/dev/null",
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "hello from the host\n"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_to_string(rw.join("from-guest")).unwrap(),
        "guest\n"
    );

    // A read-only share refuses writes, even from root.
    let out = ssh(
        &ip,
        "sudo mkdir -p /srv/m && sudo mount -t virtiofs manifests /srv/m && cat /srv/m/manifest.yaml && sudo touch /srv/m/new",
    );
    assert_eq!(out.stdout, "kind: Pod\n", "{}", out.stderr);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("Read-only file system"),
        "{}",
        out.stderr
    );
    assert!(!ro.join("new").exists());

    // The automount tag holds the named shares as subdirectories.
    let out = ssh(
        &ip,
        "sudo mkdir -p /mnt/shared && sudo mount -t virtiofs com.apple.virtio-fs.automount /mnt/shared && ls /mnt/shared && cat /mnt/shared/alpha/in-a && sudo touch /mnt/shared/beta/x",
    );
    assert_eq!(out.stdout, "alpha\nbeta\na\n", "{}", out.stderr);
    assert!(
        out.stderr.contains("Read-only file system"),
        "{}",
        out.stderr
    );

    // Any other tag fails as Linux fails it.
    let out = ssh(
        &ip,
        "sudo mkdir -p /mnt/x && sudo mount -t virtiofs secret /mnt/x",
    );
    assert_eq!(out.code, 32);
    assert_eq!(
        out.stderr,
        "mount: /mnt/x: wrong fs type, bad option, bad superblock on secret, missing codepage or helper program, or other error.\n       dmesg(1) may have more information after failed mount system call.\n"
    );
    // A host path never shared is not there, not even for root.
    let out = ssh(&ip, &format!("sudo cat {}/key", secret.display()));
    assert_ne!(out.code, 0);
    assert!(!out.stdout.contains("not for the guest"));

    // A virtiofs line in /etc/fstab is mounted at the next boot (a reboot from inside ends
    // the VM, as Virtualization.framework has no guest reset; then it is run again).
    let out = ssh(
        &ip,
        "echo 'work /srv/work virtiofs nofail 0 0' | sudo tee -a /etc/fstab >/dev/null && sudo reboot",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(wait_exit(&mut run, 20), 0);
    let _run = sim.start_with("vm", &flags);
    let ip = sim.ok(&["ip", "vm", "--wait", "30"]).trim().to_string();
    wait_for_port(&ip);
    let out = ssh(&ip, "mountpoint -q /srv/work && cat /srv/work/from-guest");
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "guest\n"),
        "{}",
        out.stderr
    );
    // The other mounts were not in fstab: gone after the boot, as on a Mac.
    let out = ssh(&ip, "mountpoint -q /srv/m");
    assert_ne!(out.code, 0);
}
