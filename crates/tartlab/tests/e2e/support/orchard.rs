//! A fleet of the real Orchard on this machine: `orchard controller run` on 127.0.0.1 and
//! `orchard worker run` processes driving tart-sim as `tart` through Orchard's own tart
//! runtime (the patched test build: `ORCHARD_WORKER_RUNTIME=tart`), each worker with its
//! own TART_HOME, so its VMs never reach another worker's (two Macs' networks are apart).
//! Dropping the fleet stops exactly the processes it started, even when a test panics.
//!
//! ```ignore
//! let fleet = Fleet::start(&[("w1", &[("worker", "w1")]), ("w2", &[("worker", "w2")])]);
//! let vm = fleet.api("POST", "/v1/vms", Some(&body)).ok();   // as the bootstrap admin
//! fleet.wait_for_vm("a", "running");
//! fleet.orchard(&["ssh", "vm", "a", "hostname"]);               // the CLI, admin context
//! ```

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{tart_sim, Out};

/// How long a fleet waits for any state it polls for (the worker syncs every 5 s, so a VM
/// takes one or two ticks); only a broken run ever reaches it.
const WAIT: Duration = Duration::from_secs(60);
/// How long a stopped process gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(10);
/// The workers' tart-sim boot delay: fast, as in tartlab's other end-to-end tests.
const BOOT_MS: &str = "400";

/// The patched orchard binary: `TARTLAB_TEST_ORCHARD` (scripts/test.sh sets it) or where
/// scripts/install-orchard.sh puts it. Fails, never skips, when it is missing.
pub fn orchard_bin() -> PathBuf {
    let bin = std::env::var_os("TARTLAB_TEST_ORCHARD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/tartlab-test-tools/orchard/orchard"));
    assert!(
        bin.is_file(),
        "the orchard binary {} is missing: run scripts/install-deps.sh (or set \
         TARTLAB_TEST_ORCHARD to a build with the tart-runtime patch)",
        bin.display()
    );
    bin
}

/// The unpatched orchard build (its Linux workers always run the vetu runtime), which
/// scripts/install-orchard.sh puts beside the patched one: `TARTLAB_TEST_ORCHARD_VETU`, or
/// `orchard-vetu` beside `orchard_bin()`. Fails, never skips, when it is missing.
pub fn orchard_vetu_bin() -> PathBuf {
    let bin = std::env::var_os("TARTLAB_TEST_ORCHARD_VETU")
        .map(PathBuf::from)
        .unwrap_or_else(|| orchard_bin().with_file_name("orchard-vetu"));
    assert!(
        bin.is_file(),
        "the unpatched orchard binary {} is missing: run scripts/install-orchard.sh (or set \
         TARTLAB_TEST_ORCHARD_VETU to Orchard's own build)",
        bin.display()
    );
    bin
}

/// Which orchard a fleet runs, and so which runtime its workers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Build {
    /// The test build, `ORCHARD_WORKER_RUNTIME=tart`: Orchard's tart runtime, as on a Mac.
    TartRuntime,
    /// Orchard's own build: a Linux worker runs the vetu runtime (tart-sim as `vetu`).
    Unpatched,
}

/// A service account's name and token (HTTP Basic credentials).
#[derive(Clone, Debug)]
pub struct Credential {
    pub name: String,
    pub token: String,
}

/// An HTTP response from the controller.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    /// The body as JSON (`Value::Null` when it is empty or not JSON: many errors have none).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The JSON body of a 200, else the test fails with the status and body.
    pub fn ok(&self) -> Value {
        assert_eq!(self.status, 200, "controller answered {self:?}");
        self.json()
    }
}

/// A process the fleet started in a process group of its own.
struct Proc {
    child: Child,
}

impl Proc {
    fn spawn(mut cmd: Command) -> Proc {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        Proc {
            child: cmd.spawn().unwrap(),
        }
    }

    fn pgid(&self) -> i32 {
        self.child.id() as i32
    }

    fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }

    /// SIGTERM to the group, SIGKILL to it after GRACE (and to what outlived the leader).
    fn stop(&mut self) {
        signal_group(self.pgid(), libc::SIGTERM);
        let deadline = Instant::now() + GRACE;
        while !self.exited() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        signal_group(self.pgid(), libc::SIGKILL);
        let _ = self.child.wait();
    }
}

fn signal_group(pgid: i32, signal: i32) {
    // SAFETY: signalling a process group this fleet created (process_group(0)); ESRCH once
    // it is gone is harmless.
    unsafe { libc::kill(-pgid, signal) };
}

pub struct Worker {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// This worker's TART_HOME: where its tart-sim VMs live.
    pub tart_home: PathBuf,
    /// Every tart command line the worker ran, one per line.
    pub tart_calls: PathBuf,
    pub log: PathBuf,
    proc: Option<Proc>,
    /// Groups of earlier runs killed as a crash would (their `tart run`s may live on).
    dead: Vec<Proc>,
}

pub struct Fleet {
    pub dir: tempfile::TempDir,
    pub url: String,
    addr: String,
    pub admin: Credential,
    /// The credential the workers bootstrap with (compute:read, compute:write).
    pub workers_account: Credential,
    /// The controller's ORCHARD_HOME: the CLI's admin context lives there.
    pub orchard_home: PathBuf,
    pub controller_log: PathBuf,
    bin: PathBuf,
    /// The orchard binary of this fleet (controller, workers and CLI) and its build.
    orchard: PathBuf,
    build: Build,
    controller: Option<Proc>,
    workers: Vec<Worker>,
}

impl Fleet {
    /// Starts a controller and these workers (name, labels), and waits until the
    /// controller lists every worker.
    pub fn start(workers: &[(&str, &[(&str, &str)])]) -> Fleet {
        Fleet::start_build(Build::TartRuntime, workers)
    }

    /// `start` with this orchard build.
    pub fn start_build(build: Build, workers: &[(&str, &[(&str, &str)])]) -> Fleet {
        Fleet::start_with(build, workers, &[])
    }

    /// `start_build` with these extra flags of `orchard controller run`
    /// (`--worker-offline-timeout 30s`).
    pub fn start_with(
        build: Build,
        workers: &[(&str, &[(&str, &str)])],
        controller_flags: &[&str],
    ) -> Fleet {
        super::require_root();
        let orchard = match build {
            Build::TartRuntime => orchard_bin(),
            Build::Unpatched => orchard_vetu_bin(),
        };
        let dir = tempfile::Builder::new()
            .prefix("tartlab-orchard")
            .tempdir()
            .unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        install_tart(&bin);
        let (port, ssh_port) = (free_port(), free_port());
        let addr = format!("127.0.0.1:{port}");
        let orchard_home = dir.path().join("controller-home");
        std::fs::create_dir_all(&orchard_home).unwrap();
        let controller_log = dir.path().join("controller.log");
        let admin = Credential {
            // The name the controller gives the account ORCHARD_BOOTSTRAP_ADMIN_TOKEN makes.
            name: "bootstrap-admin".into(),
            token: format!("admin-{}", random_hex()),
        };
        let mut cmd = Command::new(&orchard);
        cmd.args(["controller", "run", "--insecure-no-tls"])
            .args(["--listen", &addr])
            .args(["--listen-ssh", &format!("127.0.0.1:{ssh_port}")])
            .args(controller_flags)
            .arg("--data-dir")
            .arg(dir.path().join("controller-data"))
            .env("ORCHARD_HOME", &orchard_home)
            .env("ORCHARD_BOOTSTRAP_ADMIN_TOKEN", &admin.token)
            .stdin(Stdio::null());
        log_to(&mut cmd, &controller_log);
        let mut fleet = Fleet {
            url: format!("http://{addr}"),
            addr,
            admin,
            workers_account: Credential {
                name: "workers".into(),
                token: String::new(),
            },
            orchard_home,
            controller_log,
            bin,
            orchard,
            build,
            controller: Some(Proc::spawn(cmd)),
            workers: Vec::new(),
            dir,
        };
        fleet.wait_started("the controller to answer /v1/controller/info", |f| {
            f.try_api("GET", "/v1/controller/info", None)
                .is_ok_and(|r| r.status == 200)
        });
        fleet.workers_account =
            fleet.service_account("workers", &["compute:read", "compute:write"]);
        for (name, labels) in workers {
            let worker = fleet.new_worker(name, labels);
            fleet.workers.push(worker);
            fleet.run_worker(name);
        }
        let names: Vec<&str> = workers.iter().map(|(n, _)| *n).collect();
        fleet.wait_started(&format!("the controller to list workers {names:?}"), |f| {
            let listed = f.api("GET", "/v1/workers", None).ok();
            let listed: Vec<&str> = listed
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|w| w["name"].as_str())
                .collect();
            names.iter().all(|n| listed.contains(n))
        });
        fleet
    }

    /// A service account with these roles (`compute:read`, `compute:write`,
    /// `compute:connect`, `admin:read`, `admin:write`) and a random token.
    pub fn service_account(&self, name: &str, roles: &[&str]) -> Credential {
        let token = format!("{name}-{}", random_hex());
        let body = json!({"name": name, "token": token, "roles": roles});
        self.api("POST", "/v1/service-accounts", Some(&body)).ok();
        Credential {
            name: name.into(),
            token,
        }
    }

    /// A request as the bootstrap admin; fails the test if the controller is unreachable.
    pub fn api(&self, method: &str, path: &str, body: Option<&Value>) -> Response {
        self.api_as(&self.admin, method, path, body)
    }

    pub fn api_as(
        &self,
        who: &Credential,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Response {
        http(&self.addr, method, path, Some(who), body).unwrap_or_else(|e| {
            panic!(
                "{method} {path}: {e}\n{}",
                tail("controller", &self.controller_log)
            )
        })
    }

    fn try_api(&self, method: &str, path: &str, body: Option<&Value>) -> std::io::Result<Response> {
        http(&self.addr, method, path, Some(&self.admin), body)
    }

    /// Polls `check` until it gives a value, at most WAIT; then fails the test naming
    /// `what`, with the end of the controller's and every worker's log.
    pub fn wait_for<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(v) = check() {
                return v;
            }
            if Instant::now() > deadline {
                panic!("waited {WAIT:?} for {what}\n{}", self.log_tails());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until VM `name` has this `status` (`running`, `failed`); returns the VM. A VM
    /// that fails while `running` is awaited fails the test with its message.
    pub fn wait_for_vm(&self, name: &str, status: &str) -> Value {
        self.wait_for(&format!("VM {name} to be {status}"), || {
            let vm = self.api("GET", &format!("/v1/vms/{name}"), None).ok();
            if vm["status"] == "failed" && status != "failed" {
                panic!(
                    "VM {name} failed: {}\n{}",
                    vm["status_message"],
                    self.log_tails()
                );
            }
            (vm["status"] == status).then_some(vm)
        })
    }

    /// Deletes these VMs through the API and waits until the controller lists none of
    /// them and no worker's TART_HOME holds a VM any more.
    pub fn delete_vms_and_wait_gone(&self, names: &[&str]) {
        for name in names {
            let r = self.api("DELETE", &format!("/v1/vms/{name}"), None);
            assert!(matches!(r.status, 200 | 404), "DELETE {name}: {r:?}");
        }
        self.wait_for("the controller to list none of the deleted VMs", || {
            let vms = self.api("GET", "/v1/vms", None).ok();
            let left = vms
                .as_array()?
                .iter()
                .any(|v| names.iter().any(|n| v["name"] == *n));
            (!left).then_some(())
        });
        for worker in &self.workers {
            self.wait_for(
                &format!("worker {}'s tart VMs to be deleted", worker.name),
                || self.tart_vms(&worker.name).is_empty().then_some(()),
            );
        }
    }

    /// The local tart-sim VMs in a worker's TART_HOME (`tart list --source local`).
    pub fn tart_vms(&self, worker: &str) -> Vec<String> {
        let out = self.tart(worker, &["list", "--quiet", "--source", "local"]);
        assert_eq!(out.code, 0, "tart list: {}", out.stderr);
        out.stdout.lines().map(str::to_string).collect()
    }

    /// The `State` of each local tart-sim VM of a worker (`running`, `stopped`), by name.
    pub fn tart_vm_states(&self, worker: &str) -> Vec<String> {
        let out = self.tart(worker, &["list", "--format", "json", "--source", "local"]);
        assert_eq!(out.code, 0, "tart list: {}", out.stderr);
        let list: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
        let mut vms: Vec<(String, String)> = list
            .iter()
            .map(|v| {
                (
                    v["Name"].to_string(),
                    v["State"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        vms.sort();
        vms.into_iter().map(|(_, state)| state).collect()
    }

    /// tart-sim with a worker's environment (its TART_HOME), as the worker runs it.
    pub fn tart(&self, worker: &str, args: &[&str]) -> Out {
        let mut cmd = Command::new(tart_sim());
        cmd.args(args).stdin(Stdio::null());
        self.tart_env(&mut cmd, self.worker(worker));
        cmd.output().unwrap().into()
    }

    /// The orchard CLI with the controller's ORCHARD_HOME (its bootstrap-admin context).
    pub fn orchard(&self, args: &[&str]) -> Out {
        Command::new(&self.orchard)
            .args(args)
            .env("ORCHARD_HOME", &self.orchard_home)
            .stdin(Stdio::null())
            .output()
            .unwrap()
            .into()
    }

    pub fn worker(&self, name: &str) -> &Worker {
        self.workers
            .iter()
            .find(|w| w.name == name)
            .unwrap_or_else(|| panic!("no worker {name} in this fleet"))
    }

    fn worker_mut(&mut self, name: &str) -> &mut Worker {
        self.workers
            .iter_mut()
            .find(|w| w.name == name)
            .unwrap_or_else(|| panic!("no worker {name} in this fleet"))
    }

    /// The TART_HOME of each worker, by name.
    pub fn tart_homes(&self) -> BTreeMap<String, PathBuf> {
        self.workers
            .iter()
            .map(|w| (w.name.clone(), w.tart_home.clone()))
            .collect()
    }

    /// From now on, the `tart ip` this worker runs (when the controller asks it a VM's
    /// address) waits until `release_tart_ip`, so that a test acts while a worker is asked.
    pub fn hold_tart_ip(&self, worker: &str) {
        std::fs::write(hold_ip(self.worker(worker)), "").unwrap();
    }

    /// Whether a held `tart ip` of this worker has been asked since `hold_tart_ip`.
    pub fn tart_ip_asked(&self, worker: &str) -> bool {
        hold_ip(self.worker(worker))
            .with_extension("asked")
            .exists()
    }

    pub fn release_tart_ip(&self, worker: &str) {
        let hold = hold_ip(self.worker(worker));
        let _ = std::fs::remove_file(&hold);
        let _ = std::fs::remove_file(hold.with_extension("asked"));
    }

    /// The uid of each VM on the controller, by name.
    pub fn vm_uids(&self) -> BTreeMap<String, String> {
        let vms = self.api("GET", "/v1/vms", None).ok();
        vms.as_array()
            .into_iter()
            .flatten()
            .map(|vm| {
                let text = |k: &str| vm[k].as_str().unwrap_or_default().to_string();
                (text("name"), text("uid"))
            })
            .collect()
    }

    /// SIGKILLs the worker process alone, as a crash would: its `tart run`s live on (their
    /// group is stopped when the fleet is dropped).
    pub fn kill_worker(&mut self, name: &str) {
        let worker = self.worker_mut(name);
        if let Some(mut proc) = worker.proc.take() {
            // SAFETY: killing the worker process this fleet started.
            unsafe { libc::kill(proc.pgid(), libc::SIGKILL) };
            let _ = proc.child.wait();
            worker.dead.push(proc);
        }
    }

    /// Starts the worker again (killing it first if it runs) with the same name, labels,
    /// TART_HOME and log, and waits until the controller hears from the new process.
    pub fn restart_worker(&mut self, name: &str) {
        self.kill_worker(name);
        let path = format!("/v1/workers/{name}");
        let seen_before = self.api("GET", &path, None).ok()["last_seen"].clone();
        self.run_worker(name);
        self.wait_for(&format!("restarted worker {name} to report"), || {
            let seen = self.api("GET", &path, None).ok()["last_seen"].clone();
            (seen != seen_before).then_some(())
        });
    }

    fn new_worker(&self, name: &str, labels: &[(&str, &str)]) -> Worker {
        let root = self.dir.path().join(name);
        std::fs::create_dir_all(root.join("orchard-home")).unwrap();
        Worker {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            tart_home: root.join("tart-home"),
            tart_calls: root.join("tart-calls.log"),
            log: root.join("worker.log"),
            proc: None,
            dead: Vec::new(),
        }
    }

    fn run_worker(&mut self, name: &str) {
        let token = self.bootstrap_token();
        let worker = self.worker(name);
        let labels: Vec<String> = worker
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut cmd = Command::new(&self.orchard);
        cmd.args(["worker", "run", &self.url, "--name", name])
            // On stdin, so the token is not on a command line `ps` shows.
            .arg("--bootstrap-token-stdin")
            .env(
                "ORCHARD_HOME",
                worker.tart_home.with_file_name("orchard-home"),
            )
            .stdin(Stdio::piped());
        match self.build {
            Build::TartRuntime => cmd.env("ORCHARD_WORKER_RUNTIME", "tart"),
            Build::Unpatched => cmd.env_remove("ORCHARD_WORKER_RUNTIME"),
        };
        if !labels.is_empty() {
            cmd.arg("--labels").arg(labels.join(","));
        }
        self.tart_env(&mut cmd, worker);
        log_to(&mut cmd, &worker.log);
        let mut proc = Proc::spawn(cmd);
        let mut stdin = proc.child.stdin.take().unwrap();
        writeln!(stdin, "{token}").unwrap();
        drop(stdin);
        self.worker_mut(name).proc = Some(proc);
    }

    /// `orchard get bootstrap-token workers`, as an operator gets it for a new Mac.
    fn bootstrap_token(&self) -> String {
        let out = self.orchard(&["get", "bootstrap-token", &self.workers_account.name]);
        assert_eq!(out.code, 0, "orchard get bootstrap-token: {}", out.stderr);
        out.stdout.trim().to_string()
    }

    /// What a worker (and the `tart` it runs) sees: tart-sim first on PATH, its TART_HOME,
    /// the fast boot of tartlab's other end-to-end tests.
    fn tart_env(&self, cmd: &mut Command, worker: &Worker) {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.env("PATH", path)
            .env("TART_HOME", &worker.tart_home)
            .env("TEST_TART_CALLS", &worker.tart_calls)
            .env("TEST_HOLD_IP", hold_ip(worker))
            .env("TART_SIM_BOOT_MS", BOOT_MS)
            .env("TART_SIM_PULL_MS", "50")
            .env("TART_SIM_LOCK_MS", "100")
            .env("CI", "true")
            .env_remove("TART_SIM_FAULTS");
    }

    /// `wait_for` while the fleet starts, failing at once (with the logs) if the
    /// controller or a worker has exited: a bad flag or token ends them in milliseconds.
    fn wait_started(&mut self, what: &str, ready: impl Fn(&Fleet) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !ready(self) {
            let controller_gone = self.controller.as_mut().is_some_and(Proc::exited);
            let worker_gone = self
                .workers
                .iter_mut()
                .find_map(|w| w.proc.as_mut().is_some_and(Proc::exited).then_some(&w.name))
                .cloned();
            if controller_gone || worker_gone.is_some() {
                let who = worker_gone.map_or("the controller".into(), |w| format!("worker {w}"));
                panic!(
                    "{who} exited while waiting for {what}\n{}",
                    self.log_tails()
                );
            }
            if Instant::now() > deadline {
                panic!("waited {WAIT:?} for {what}\n{}", self.log_tails());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines of the controller's and each worker's log.
    pub fn log_tails(&self) -> String {
        let mut text = tail("controller", &self.controller_log);
        for w in &self.workers {
            text.push_str(&tail(&format!("worker {}", w.name), &w.log));
        }
        text
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        // Workers first (with their `tart run`s: the same process groups), then what the
        // guests left (cgroups, nftables tables, addresses), then the controller.
        for worker in &mut self.workers {
            if let Some(proc) = &mut worker.proc {
                proc.stop();
            }
            for proc in &mut worker.dead {
                proc.stop();
            }
            let _ = Command::new(tart_sim())
                .arg("reap")
                .env("TART_HOME", &worker.tart_home)
                .output();
        }
        if let Some(proc) = &mut self.controller {
            proc.stop();
        }
    }
}

/// `tart` on the private PATH: a wrapper recording each command line (in
/// `$TEST_TART_CALLS`), then tart-sim under the name `tart`; and `softnet`, which tart runs
/// for `--net-softnet`.
fn install_tart(bin: &Path) {
    let sim = tart_sim();
    for name in ["tart", "vetu"] {
        // `ip` waits while $TEST_HOLD_IP exists (`Fleet::hold_tart_ip`), saying so first.
        let wrapper = format!(
            "#!/bin/bash\nprintf '%s\\n' \"$*\" >> \"$TEST_TART_CALLS\"\nif [ \"$1\" = ip ] && [ -e \"$TEST_HOLD_IP\" ]; then : > \"$TEST_HOLD_IP.asked\"; while [ -e \"$TEST_HOLD_IP\" ]; do sleep 0.05; done; fi\nexec -a {name} '{}' \"$@\"\n",
            sim.display()
        );
        std::fs::write(bin.join(name), wrapper).unwrap();
    }
    let softnet = format!("#!/bin/bash\nexec -a softnet '{}' \"$@\"\n", sim.display());
    std::fs::write(bin.join("softnet"), softnet).unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(bin.join("tart"))
        .arg(bin.join("vetu"))
        .arg(bin.join("softnet"))
        .status()
        .unwrap();
}

/// The file whose presence holds a worker's `tart ip` (beside its TART_HOME).
fn hold_ip(worker: &Worker) -> PathBuf {
    worker.tart_home.with_file_name("hold-ip")
}

fn log_to(cmd: &mut Command, log: &Path) {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    cmd.stdout(file.try_clone().unwrap()).stderr(file);
}

/// The last 30 lines of a log, headed with what it is.
pub fn tail(what: &str, log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let last = lines[lines.len().saturating_sub(30)..].join("\n");
    format!("--- end of the {what} log ({}):\n{last}\n", log.display())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn random_hex() -> String {
    let mut bytes = [0u8; 12];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One blocking HTTP/1.1 request (`Connection: close`), Basic auth, JSON body; the
/// response read to its end, de-chunked. Enough for the controller's REST API.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    who: Option<&Credential>,
    body: Option<&Value>,
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    // `/ip?wait=N` holds the request up to N seconds.
    stream.set_read_timeout(Some(Duration::from_secs(90)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: tartlab-tests\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(who) = who {
        let basic = base64(format!("{}:{}", who.name, who.token).as_bytes());
        request.push_str(&format!("Authorization: Basic {basic}\r\n"));
    }
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut payload = raw[split + 4..].to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        payload = dechunk(&payload).ok_or_else(|| bad("bad chunked body"))?;
    }
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&payload).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
