//! `up` with provisioning on, in seconds and without root: the fake provider's VM is a real
//! OpenSSH sshd this test starts on 127.0.0.1 (its own port, host key and config in a
//! tempdir, as the current user; `PermitRootLogin` lets it run as root too, where sshd also
//! wants `/run/sshd`). The "guest" is the tempdir: a `ForceCommand` wrapper puts a `sudo`
//! shim first on PATH, and the shim runs the root script with `/etc/`, `/run/` and
//! `/var/lib/` moved into the tempdir, so the base stage's identity part (new host keys pinned
//! then put in place, sshd reloaded with a SIGHUP, the served key checked, hostname,
//! `/etc/hosts`, machine-id), the hosts block with the network check, and steps (outputs,
//! masking, failures) run for real and never touch this machine.
//!
//! Not covered here (the end-to-end tests through tart-sim cover them): the first login
//! with the image's password (sshd without PAM or root cannot check one: the lab key is
//! authorized and recorded beforehand), the lab key's install, users (useradd, sudoers),
//! mounts, cloud-init and file uploads (they need root, or a subsystem the wrapper does not
//! serve), and a real sudo (the shim keeps the login user).
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::events::{Action, Provisioned, Reporter, Stage};
use super::{Engine, NodeReport, Options, Provisioning};
use crate::lab::{self, Source};
use crate::provider::fake::FakeProvider;
use crate::state::StateDir;

/// The guest's `sudo`: logs its arguments, then (unless told to refuse) runs the command
/// with the root paths moved into the guest's tempdir.
const SUDO_SHIM: &str = r#"#!/bin/bash
printf '%s\n' "$*" | head -c 200 >> "$GUEST/sudo.log"; echo >> "$GUEST/sudo.log"
if [ -e "$GUEST/refuse-sudo" ]; then echo 'sudo: a password is required' >&2; exit 1; fi
[ "$1" = -n ] && shift
args=()
for a in "$@"; do
  a=${a//\/etc\//$GUEST/etc/}; a=${a//\/run\//$GUEST/run/}; a=${a//\/var\/lib\//$GUEST/var/lib/}
  args+=("$a")
done
exec "${args[@]}"
"#;

const HOSTNAMECTL_SHIM: &str = r#"#!/bin/bash
[ "$1" = set-hostname ] && printf '%s\n' "$2" > "$GUEST/etc/hostname"
"#;

/// Every command the guest is sent runs here, with the shims first on PATH.
const WRAPPER: &str = r#"#!/bin/bash
export GUEST=__GUEST__ PATH=__GUEST__/bin:$PATH
exec /bin/bash -c "$SSH_ORIGINAL_COMMAND"
"#;

/// A real sshd on 127.0.0.1, stopped when dropped.
struct Guest {
    root: tempfile::TempDir,
    port: u16,
    sshd: Child,
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
        // sshd re-executes itself on SIGHUP under the same pid; a child it forked for a
        // session ends with its connection.
    }
}

fn user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn write_exec(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

impl Guest {
    /// Starts sshd accepting `authorized` (the lab's public key) for the current user.
    fn start(authorized: &str) -> Guest {
        let root = tempfile::tempdir().unwrap();
        let g = root.path();
        for d in ["etc/ssh", "run", "var/lib", "bin"] {
            std::fs::create_dir_all(g.join(d)).unwrap();
        }
        std::fs::write(
            g.join("etc/hosts"),
            "127.0.0.1 localhost\n127.0.1.1 ubuntu\n",
        )
        .unwrap();
        std::fs::write(g.join("etc/machine-id"), "0123\n").unwrap();
        std::fs::write(g.join("authorized_keys"), format!("{authorized}\n")).unwrap();
        let key = g.join("etc/ssh/ssh_host_ed25519_key");
        let made = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(made.success());
        write_exec(&g.join("bin/sudo"), SUDO_SHIM);
        write_exec(&g.join("bin/hostnamectl"), HOSTNAMECTL_SHIM);
        let guest = g.display().to_string();
        write_exec(&g.join("wrapper"), &WRAPPER.replace("__GUEST__", &guest));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let config = format!(
            "ListenAddress 127.0.0.1:{port}\nHostKey {guest}/etc/ssh/ssh_host_ed25519_key\n\
             PidFile {guest}/run/sshd.pid\nUsePAM no\nStrictModes no\n\
             AuthorizedKeysFile {guest}/authorized_keys\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
             ForceCommand {guest}/wrapper\nLogLevel ERROR\n"
        );
        std::fs::write(g.join("sshd_config"), config).unwrap();
        // As root, sshd wants its privilege separation directory (compiled in; Debian's
        // package makes it at boot). As any other user it needs none.
        if user() == "root" {
            std::fs::create_dir_all("/run/sshd").unwrap();
        }
        let sshd = Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-f")
            .arg(g.join("sshd_config"))
            .arg("-E")
            .arg(g.join("sshd.log"))
            .spawn()
            .unwrap();
        let mut guest = Guest { root, port, sshd };
        // Ready once it listens (the engine would retry too; this keeps failures clear).
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = guest.sshd.try_wait().unwrap().is_some();
            assert!(
                !exited && Instant::now() < deadline,
                "sshd: {}",
                guest.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        guest
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    fn log(&self) -> String {
        self.read("sshd.log")
    }
}

/// A one-node lab logging in as the current user, its VM's sshd the guest's; the lab key
/// is authorized on the guest and recorded as installed (so the login uses it).
struct Setup {
    dir: tempfile::TempDir,
    provider: Arc<FakeProvider>,
    guest: Guest,
    yaml: String,
}

impl Setup {
    async fn new() -> Setup {
        Setup::with("").await
    }

    /// The one-node lab with `more` (a `provision:` list, say) after it.
    async fn with(more: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "lab: t\ndefaults: {{ login: {{ user: {}, password: unused }} }}\nclusters:\n  - name: a\n    nodes:\n      - {{ name: master, role: master }}\n{more}",
            user()
        );
        let state = StateDir::create_beside(&dir.path().join("tartlab.yaml")).unwrap();
        let public = state.lab_key().unwrap().public_key().to_openssh().unwrap();
        let guest = Guest::start(&public);
        let provider = Arc::new(FakeProvider::new().with_sshd_port(guest.port));
        let setup = Setup {
            dir,
            provider,
            guest,
            yaml,
        };
        // Created and booted, then the key recorded as installed.
        let skip = Options {
            provision: Provisioning::Skip,
            ..Options::up()
        };
        let engine = setup.engine(skip).await;
        let every: Vec<String> = engine
            .lab()
            .nodes
            .iter()
            .map(|n| n.vm_name.clone())
            .collect();
        let reports = engine.up(every, Reporter::silent(), false).await.unwrap();
        assert!(reports.iter().all(|r| r.failure.is_none()), "{reports:?}");
        let path = setup.dir.path().join(".tartlab/state.json");
        let mut state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        state["vms"]["a-master"]["applied"]["lab-key"] = "installed".into();
        std::fs::write(&path, state.to_string()).unwrap();
        setup
    }

    async fn engine(&self, options: Options) -> Engine {
        let lab = lab::read(Source::new(
            &self.dir.path().join("tartlab.yaml"),
            self.yaml.clone(),
        ))
        .unwrap_or_else(|e| panic!("{e:?}"));
        let state_dir = StateDir::create_beside(&lab.source.path).unwrap();
        Engine::open(lab, state_dir, None, self.provider.clone(), options)
            .await
            .unwrap()
    }

    async fn up(&self, options: Options) -> Vec<NodeReport> {
        let engine = self.engine(options).await;
        engine
            .up(vec!["a-master".into()], Reporter::silent(), false)
            .await
            .unwrap()
    }

    fn state_dir(&self) -> StateDir {
        StateDir::beside(&self.dir.path().join("tartlab.yaml"))
    }

    fn pinned(&self) -> Vec<String> {
        let known = self.state_dir().known_hosts_path();
        let text = std::fs::read_to_string(known).unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("a-master ") || l.contains(" ssh-"))
            .map(|l| l.split_whitespace().nth(2).unwrap_or_default().to_string())
            .collect()
    }
}

fn key_blob(line: &str) -> String {
    line.split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn the_base_stage_gives_the_guest_its_identity_and_pins_the_key_sshd_then_serves() {
    let setup = Setup::new().await;
    let old = key_blob(&setup.guest.read("etc/ssh/ssh_host_ed25519_key.pub"));
    let reports = setup.up(Options::up()).await;
    let report = &reports[0];
    assert!(
        report.failure.is_none(),
        "{report:?}\n{}",
        setup.guest.log()
    );
    assert!(
        report
            .actions
            .contains(&Action::Provisioned(vec![Provisioned::Identity])),
        "{:?}",
        report.actions
    );
    let g = &setup.guest;
    // The guest's own files, changed by the script.
    assert_eq!(g.read("etc/hostname").trim(), "a-master");
    assert!(g.read("etc/hosts").contains("127.0.1.1 a-master\n"));
    assert!(!g.read("etc/hosts").contains("ubuntu"));
    let machine_id = g.read("etc/machine-id");
    assert_eq!(machine_id.trim().len(), 32, "{machine_id:?}");
    let new = key_blob(&g.read("etc/ssh/ssh_host_ed25519_key.pub"));
    assert_ne!(new, old, "new host keys in place");
    assert!(!g.path("etc/ssh/tartlab-new-keys").exists());
    assert!(g
        .read("var/lib/tartlab/lock.holder")
        .starts_with("base provisioning"));
    // Run through sudo -n and the provisioning lock.
    assert!(
        g.read("sudo.log")
            .starts_with("-n /bin/bash -c set -euo pipefail"),
        "{}",
        g.read("sudo.log")
    );
    // The key sshd serves now is the one pinned; the old one is not.
    let pinned = setup.pinned();
    assert!(pinned.contains(&new), "{pinned:?}");
    assert!(!pinned.contains(&old), "{pinned:?}");
    let state = setup.state_dir().read_state("t").unwrap();
    assert!(state.vms["a-master"].applied.contains_key("identity"));
    assert_eq!(
        state.vms["a-master"]
            .last_up
            .as_ref()
            .map(|l| l.stage.clone()),
        Some(None)
    );
}

#[tokio::test]
async fn a_provisioned_node_is_logged_into_with_its_new_key_and_nothing_runs_again() {
    let setup = Setup::new().await;
    let first = setup.up(Options::up()).await;
    assert!(first[0].failure.is_none(), "{first:?}");
    let sudo_before = setup.guest.read("sudo.log");
    let hosts_before = setup.guest.read("etc/hosts");
    let again = setup.up(Options::up()).await;
    assert!(again[0].failure.is_none(), "{again:?}");
    assert!(again[0].actions.is_empty(), "{:?}", again[0].actions);
    assert_eq!(setup.guest.read("sudo.log"), sudo_before, "no root command");
    assert_eq!(setup.guest.read("etc/hosts"), hosts_before);
}

#[tokio::test]
async fn a_sudo_that_wants_a_password_fails_the_base_stage_naming_the_node_and_the_fix() {
    let setup = Setup::new().await;
    std::fs::write(setup.guest.path("refuse-sudo"), "").unwrap();
    let old = key_blob(&setup.guest.read("etc/ssh/ssh_host_ed25519_key.pub"));
    let reports = setup.up(Options::up()).await;
    assert_eq!(reports[0].node, "a-master");
    let failure = reports[0].failure.as_ref().expect("failed");
    assert_eq!(failure.stage, Stage::Base);
    assert!(
        failure
            .message
            .starts_with("base provisioning failed (exit status 1):"),
        "{failure:?}"
    );
    assert!(
        failure.message.contains("| sudo: a password is required"),
        "{failure:?}"
    );
    assert!(failure.hint.contains("passwordless sudo"), "{failure:?}");
    let log = setup.state_dir().provision_log("a-master");
    assert!(
        failure.hint.contains(&log.display().to_string()),
        "{failure:?}"
    );
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("a password is required"));
    // Nothing changed on the guest, nothing recorded, the old key still pinned.
    assert_eq!(
        key_blob(&setup.guest.read("etc/ssh/ssh_host_ed25519_key.pub")),
        old
    );
    assert!(setup.guest.read("etc/hosts").contains("127.0.1.1 ubuntu"));
    let state = setup.state_dir().read_state("t").unwrap();
    assert!(!state.vms["a-master"].applied.contains_key("identity"));
    assert_eq!(
        state.vms["a-master"]
            .last_up
            .as_ref()
            .and_then(|l| l.stage.clone())
            .as_deref(),
        Some("base")
    );
    assert_eq!(setup.pinned(), [old]);
}

const STEPS: &str = "provision:\n  - name: server\n    outputs: [{ name: token, secret: true }, url]\n    run: |\n      t=$(printf '%s-%s' s3cr3t t0ken)\n      echo \"tartlab-output token=$t\"\n      echo \"tartlab-output url=https://$TARTLAB_NODE:6443\"\n      echo \"the token is $t\"\n      id -un > \"$GUEST/ran-as\"\n";

#[tokio::test]
async fn a_step_runs_as_root_records_its_outputs_and_never_shows_a_secret() {
    let setup = Setup::with(STEPS).await;
    let reports = setup.up(Options::up()).await;
    let report = &reports[0];
    assert!(report.failure.is_none(), "{report:?}");
    assert!(
        report
            .actions
            .contains(&Action::RanSteps(vec!["server".into()])),
        "{:?}",
        report.actions
    );
    // Run through sudo (the script is where the root paths are: the shim moved them; the
    // shim keeps the login user, where a real sudo makes it root).
    assert_eq!(setup.guest.read("ran-as").trim(), user());
    assert!(setup.guest.path("var/lib/tartlab/steps/server.sh").exists());
    let state = setup.state_dir().read_state("t").unwrap();
    let outputs = &state.vms["a-master"].outputs;
    assert_eq!(outputs["token"], "s3cr3t-t0ken");
    assert_eq!(outputs["url"], "https://a-master:6443");
    let log = std::fs::read_to_string(setup.state_dir().provision_log("a-master")).unwrap();
    assert!(log.contains("the token is"), "{log}");
    // The value, made on the guest, appears only in the step's output: masked there.
    assert!(log.contains("the token is ********"), "{log}");
    assert!(!log.contains("s3cr3t-t0ken"), "masked: {log}");
    // Its inputs unchanged, it does not run again.
    std::fs::remove_file(setup.guest.path("ran-as")).unwrap();
    let again = setup.up(Options::up()).await;
    assert!(
        again[0].failure.is_none() && again[0].actions.is_empty(),
        "{again:?}"
    );
    assert!(!setup.guest.path("ran-as").exists());
}

#[tokio::test]
async fn a_failing_step_is_reported_with_its_node_its_exit_status_and_its_last_lines() {
    let setup = Setup::with(
        "provision:\n  - name: picky\n    run: |\n      echo first\n      echo last words >&2\n      exit 3\n  - name: later\n    run: touch \"$GUEST/later-ran\"\n",
    )
    .await;
    let reports = setup.up(Options::up()).await;
    assert_eq!(reports[0].node, "a-master");
    let failure = reports[0].failure.as_ref().expect("failed");
    assert_eq!(failure.stage, Stage::Provision);
    assert!(failure.message.contains("picky"), "{failure:?}");
    assert!(failure.message.contains("exit status 3"), "{failure:?}");
    assert!(failure.message.contains("| last words"), "{failure:?}");
    assert!(!setup.guest.path("later-ran").exists(), "later steps stop");
    let state = setup.state_dir().read_state("t").unwrap();
    let last = state.vms["a-master"].last_up.as_ref().unwrap();
    assert_eq!(last.stage.as_deref(), Some("provision"));
}

#[tokio::test]
async fn the_hosts_block_lists_the_peers_where_the_state_has_them_and_keeps_the_rest() {
    // Only a-master is provisioned (both nodes' VMs dial the one sshd); a-worker runs at the
    // address the state knows.
    let setup = Setup::with("      - { name: worker, role: worker }\n").await;
    let reports = setup.up(Options::up()).await;
    assert!(reports[0].failure.is_none(), "{reports:?}");
    assert!(
        reports[0].actions.contains(&Action::Provisioned(vec![
            Provisioned::Identity,
            Provisioned::Hosts
        ])),
        "{:?}",
        reports[0].actions
    );
    let master = setup.provider.vm("a-master").unwrap().address;
    let worker = setup.provider.vm("a-worker").unwrap().address;
    assert_eq!(
        setup.guest.read("etc/hosts"),
        format!("127.0.0.1 localhost\n127.0.1.1 a-master\n# BEGIN tartlab\n{master} a-master\n{worker} a-worker\n# END tartlab\n")
    );
    let state = setup.state_dir().read_state("t").unwrap();
    assert!(state.vms["a-master"].applied.contains_key("hosts"));
}
