//! Records the git commit tartlab is built from, for `tartlab --version`: `TARTLAB_COMMIT`
//! when the build sets it (a source tarball, as Homebrew builds it), else `git rev-parse`,
//! else "unknown".

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=TARTLAB_COMMIT");
    let commit = std::env::var("TARTLAB_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    // A new commit (HEAD or the branch it names moves) rebuilds the version. Git says where
    // each lives: in a worktree HEAD is the worktree's own, refs/heads the main repository's,
    // and a path that does not exist would make cargo rebuild tartlab every time.
    if let Ok(paths) = Command::new("git")
        .args([
            "rev-parse",
            "--git-path",
            "HEAD",
            "--git-path",
            "refs/heads",
        ])
        .output()
    {
        if paths.status.success() {
            for path in String::from_utf8_lossy(&paths.stdout).lines() {
                println!("cargo:rerun-if-changed={}", path.trim());
            }
        }
    }
    println!("cargo:rustc-env=TARTLAB_COMMIT={commit}");
}
