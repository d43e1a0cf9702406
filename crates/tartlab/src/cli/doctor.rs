//! `tartlab doctor`: whether this machine can run the lab (or any lab, without a lab file):
//! tart and its host (the provider's own checks), then the lab file, its directory and its
//! key. Each check is ok, a warning or failed, with a one-line fix; exit 1 if one failed.

use std::os::unix::fs::PermissionsExt;

use super::{out, runtime, FileArgs};
use crate::doctor::{writable, Check, Status};
use crate::error::{Exit, Result};
use crate::lab::{self, Lab};
use crate::state::StateDir;
use crate::ui;

pub fn doctor(args: &FileArgs) -> Result<Exit> {
    let (lab, mut checks) = lab_file(args);
    let choice = lab
        .as_ref()
        .map_or_else(Default::default, |l| l.file.provider.clone());
    match crate::provider::open(lab.as_ref(), None) {
        Err(e) => checks.insert(0, Check::failed(choice.name(), e.message, e.hint)),
        Ok(provider) => {
            let found = runtime()?.block_on(async {
                let inventory = crate::engine::read_inventory(provider.as_ref()).await.ok();
                let mut found = provider.doctor(lab.as_ref(), inventory.as_ref()).await;
                found.push(capabilities_check(provider.as_ref()));
                found
            });
            for (i, check) in found.into_iter().enumerate() {
                checks.insert(i, check);
            }
        }
    }
    if let Some(lab) = &lab {
        checks.extend(lab_dir(lab));
    }
    let failed = checks.iter().any(|c| c.status == Status::Failed);
    if args.json {
        out(&serde_json::json!({ "ok": !failed, "checks": checks }).to_string());
    } else {
        show(&checks);
    }
    Ok(if failed { Exit::Failed } else { Exit::Ok })
}

/// What the provider can and cannot do, in one line: what `plan` and the lifecycle
/// commands will refuse or turn into a recreate.
fn capabilities_check(provider: &dyn crate::provider::Provider) -> Check {
    let listed = provider.capabilities().listed();
    let list = |value: bool| {
        listed
            .iter()
            .filter(|(_, v)| *v == value)
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (can, cannot) = (list(true), list(false));
    let detail = if cannot.is_empty() {
        format!("{}: {can}", provider.name())
    } else {
        format!("{}: {can}; not: {cannot}", provider.name())
    };
    Check::ok("provider", detail)
}

/// The lab file, if there is one here, and what to say about it.
fn lab_file(args: &FileArgs) -> (Option<Lab>, Vec<Check>) {
    let name = "lab file";
    let path = match lab::locate(args.file.as_deref()) {
        Ok(path) => path,
        // Another user's lab file: said as `validate` says it.
        Err(d) if d.message.starts_with("found ") => {
            return (None, vec![Check::warning(name, d.message, d.help)])
        }
        Err(_) => {
            return (
                None,
                vec![Check::warning(
                    name,
                    "none here or in a parent directory: only the host was checked",
                    "tartlab init writes one",
                )],
            )
        }
    };
    match Lab::open(&path) {
        Ok(lab) => {
            let detail = format!(
                "{}: lab `{}`, {} node(s)",
                path.display(),
                lab.name(),
                lab.nodes.len()
            );
            (Some(lab), vec![Check::ok(name, detail)])
        }
        Err(problems) => (
            None,
            vec![Check::failed(
                name,
                format!("{}: {} problem(s)", path.display(), problems.len()),
                "tartlab validate shows each",
            )],
        ),
    }
}

/// The lab's directory (writable), its `.tartlab/` (safe) and its key (usable).
fn lab_dir(lab: &Lab) -> Vec<Check> {
    let dir = lab.source.dir();
    let mut checks = vec![match writable(&dir) {
        Ok(()) => Check::ok("lab directory", format!("{} is writable", dir.display())),
        Err(e) => Check::failed(
            "lab directory",
            format!("{} is not writable: {e}", dir.display()),
            "tartlab keeps the lab's state beside the lab file: make the directory writable, or move the lab file",
        ),
    }];
    let state = StateDir::beside(&lab.source.path);
    if let Err(e) = state.check() {
        checks.push(Check::failed(".tartlab", e, ""));
        return checks;
    }
    let key = state.key_path();
    checks.push(match crate::files::read_text(&key) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Check::ok("lab key", "made on the first `tartlab up`")
        }
        Err(e) => Check::failed(
            "lab key",
            format!("cannot read {}: {e}", key.display()),
            "check its owner and mode (0600)",
        ),
        Ok(text) => match russh::keys::PrivateKey::from_openssh(&text) {
            Err(e) => Check::failed(
                "lab key",
                format!("{} is not a usable key: {e}", key.display()),
                "move it away: the next `tartlab up` makes a new one and installs it (the VMs take it with the image's password)",
            ),
            Ok(_) => {
                let mode = std::fs::metadata(&key).map_or(0, |m| m.permissions().mode() & 0o777);
                if mode & 0o077 == 0 {
                    Check::ok("lab key", format!("{} (mode {mode:o})", key.display()))
                } else {
                    Check::warning(
                        "lab key",
                        format!("{} is mode {mode:o}: others can read it", key.display()),
                        format!("chmod 600 {}", key.display()),
                    )
                }
            }
        },
    });
    checks
}

fn show(checks: &[Check]) {
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|c| {
            let status = match c.status {
                Status::Ok => "ok",
                Status::Warning => "warning",
                Status::Failed => "FAILED",
            };
            vec![c.name.clone(), status.to_string(), c.detail.clone()]
        })
        .collect();
    out(&ui::table(&["CHECK", "STATUS", "FOUND"], &rows));
    for check in checks
        .iter()
        .filter(|c| !c.fix.is_empty() && c.status != Status::Ok)
    {
        out(&format!("{}: {}", check.name, check.fix));
    }
    let failed = checks.iter().filter(|c| c.status == Status::Failed).count();
    let warnings = checks
        .iter()
        .filter(|c| c.status == Status::Warning)
        .count();
    out(&match (failed, warnings) {
        (0, 0) => "doctor: ready".to_string(),
        (0, w) => format!("doctor: ready, with {w} warning(s)"),
        (f, _) => format!("doctor: {f} check(s) failed"),
    });
}
