//! `tartlab down` through the binary (issue 30, point 4): on a terminal it lists what it
//! deletes and asks `[y/N]` (`-y`/`--yes` skips the question); off a terminal, or in CI,
//! it asks nothing, as before; a node name that is nearly right gets a "did you mean".

use crate::support::{self, Lab};

const TWO: &str = "lab: asks\nclusters:\n  - name: dev\n    nodes: [{ name: web }, { name: db }]\n";

fn names(lab: &Lab) -> Vec<String> {
    lab.vms().into_iter().map(|(name, _)| name).collect()
}

#[test]
fn on_a_terminal_down_lists_what_it_deletes_and_no_keeps_it() {
    let lab = Lab::new(TWO);
    lab.ok(&["up"]);
    lab.ok(&["stop", "dev-db"]);
    let no = support::on_a_terminal_no_color(&lab, "down", "n\n");
    assert_eq!(no.code, 1, "{}", no.stdout);
    assert!(
        no.stdout
            .contains("down deletes these VMs, and their disks with them:")
            && no.stdout.contains("  dev-web (running)")
            && no.stdout.contains("  dev-db\r\n")
            && no.stdout.contains("Delete these 2 VMs? [y/N]")
            && no.stdout.contains("down: nothing deleted"),
        "{}",
        no.stdout
    );
    assert_eq!(names(&lab).len(), 2, "nothing was deleted");
    // The end of input is no as well.
    let eof = support::on_a_terminal_no_color(&lab, "down dev-web", "");
    assert_eq!(eof.code, 1, "{}", eof.stdout);
    assert!(
        eof.stdout.contains("Delete this VM? [y/N]"),
        "{}",
        eof.stdout
    );
    assert_eq!(names(&lab).len(), 2);
    let yes = support::on_a_terminal_no_color(&lab, "down dev-web", "y\n");
    assert_eq!(yes.code, 0, "{}", yes.stdout);
    assert_eq!(names(&lab), ["dev-db"]);
    // `--yes` asks nothing, on a terminal too.
    let skipped = support::on_a_terminal_no_color(&lab, "down --yes", "");
    assert_eq!(skipped.code, 0, "{}", skipped.stdout);
    assert!(!skipped.stdout.contains("[y/N]"), "{}", skipped.stdout);
    assert!(names(&lab).is_empty());
}

#[test]
fn off_a_terminal_down_asks_nothing_and_a_near_name_is_suggested() {
    let lab = Lab::new(TWO);
    lab.ok(&["up"]);
    let wrong = lab.tartlab(&["down", "dev-wbe"]);
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
    assert!(
        wrong.stderr.contains("(did you mean `dev-web`?)"),
        "{}",
        wrong.stderr
    );
    assert_eq!(names(&lab).len(), 2);
    let down = lab.ok(&["down", "-y", "dev-web"]);
    assert!(!down.stderr.contains("[y/N]"), "{}", down.stderr);
    // Piped, without --yes: no question, as scripts expect.
    let down = lab.ok(&["down"]);
    assert!(!down.stderr.contains("[y/N]"), "{}", down.stderr);
    assert!(names(&lab).is_empty());
}
