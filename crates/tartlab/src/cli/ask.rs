//! The question `down` asks before it deletes (issue 30): on a terminal, and without
//! `-y`/`--yes`, it lists the VMs (their disks go with them) and the snapshots it deletes,
//! then asks `[y/N]`, as `vagrant destroy` does. Off a terminal (a pipe, CI) it asks
//! nothing and goes on, as a script expects.

use std::io::Write;

/// Whether a person can answer: stdin and stderr are terminals, and this is not CI.
pub(super) fn at_a_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
        && std::io::stderr().is_terminal()
        && std::env::var_os("CI").is_none()
}

/// Whether an answer is yes (`y`, `Y`, `yes`); an empty line, any other word or the end of
/// input (`None`) is no.
pub(super) fn is_yes(answer: Option<&str>) -> bool {
    answer.is_some_and(|a| matches!(a.trim(), "y" | "Y" | "yes"))
}

/// What `down` deletes, as it asks: each VM (`running` when it runs), then the snapshots.
fn down_question(vms: &[(String, bool)], snapshots: usize) -> String {
    let mut text = String::from("down deletes these VMs, and their disks with them:\n");
    for (vm, running) in vms {
        let running = if *running { " (running)" } else { "" };
        text.push_str(&format!("  {vm}{running}\n"));
    }
    if snapshots > 0 {
        text.push_str(&format!(
            "and the lab's {} (`down --keep-snapshots` keeps them)\n",
            crate::text::count(snapshots, "snapshot")
        ));
    }
    let what = match (vms.len(), snapshots) {
        (1, _) => "this VM".to_string(),
        (0, _) => "these snapshots".to_string(),
        (n, _) => format!("these {n} VMs"),
    };
    format!("{text}Delete {what}? [y/N] ")
}

/// Whether `down` goes on: at once with `--yes`, off a terminal or with nothing to delete;
/// else when the person answers yes.
pub(super) fn down_confirmed(vms: &[(String, bool)], snapshots: usize, yes: bool) -> bool {
    if yes || (vms.is_empty() && snapshots == 0) || !at_a_terminal() {
        return true;
    }
    eprint!("{}", down_question(vms, snapshots));
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let answer = match std::io::stdin().read_line(&mut answer) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(answer),
    };
    is_yes(answer.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_question_lists_what_goes() {
        let vms = [("dev-a".to_string(), true), ("dev-b".to_string(), false)];
        assert_eq!(
            down_question(&vms, 2),
            "down deletes these VMs, and their disks with them:\n  dev-a (running)\n  dev-b\nand the lab's 2 snapshots (`down --keep-snapshots` keeps them)\nDelete these 2 VMs? [y/N] "
        );
        assert!(down_question(&vms[..1], 0).ends_with("  dev-a (running)\nDelete this VM? [y/N] "));
        for no in [Some("n\n"), Some("\n"), Some("sure\n"), None] {
            assert!(!is_yes(no), "{no:?}");
        }
        assert!(is_yes(Some(" yes \n")) && is_yes(Some("y")));
    }
}
