//! Running the tartlab binary without a lab around it: no root, no simulator. The output a
//! test reads (`Out`), and a runner with a guard for the commands that answer at once
//! (validate, plan, schema, help), which the lab file and CLI tests use.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Out {
    fn from(o: Output) -> Out {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Out {
    /// stdout as JSON, or a failure that shows it.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }

    /// Everything the command said, for a failure message.
    pub fn shown(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs a command to its end and keeps what it printed.
pub fn output(cmd: &mut Command) -> Out {
    cmd.output().unwrap().into()
}

/// The repository's examples directory.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// The binary in `dir` (no lab environment, stdin empty); see `tartlab_with`.
pub fn tartlab(dir: &Path, args: &[&str]) -> (i32, String, String) {
    tartlab_with(dir, args, &[])
}

/// The binary with extra environment variables. A guard ends it after a minute, so a
/// command that would hang fails its test instead of hanging the suite (never a timing
/// assertion: the commands here answer at once).
pub fn tartlab_with(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tartlab"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("TARTLAB_FILE")
        .env_remove("SUDO_UID")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (key, value) in env {
        cmd.env(key, value);
    }
    let mut child = cmd.spawn().unwrap();
    let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut text).unwrap();
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut text).unwrap();
        text
    });
    let guard = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > guard {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("tartlab {args:?} did not end within a minute");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.join().unwrap()).into_owned(),
        String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
    )
}
