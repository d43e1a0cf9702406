//! `tartlab stop` shuts the guests down and `start` brings them back, through the binary
//! against tart-sim.

use crate::support::{Lab, PAIR};

#[test]
fn stop_shuts_the_guests_down_and_start_brings_them_back() {
    let lab = Lab::new(PAIR);
    lab.ok(&["up"]);
    let marker = lab.ssh("dev-master", "sudo touch /var/tmp/kept && echo ok");
    assert_eq!(marker.stdout.trim(), "ok", "{}", marker.stderr);
    let stop = lab.ok(&["stop"]);
    assert!(
        stop.stdout.contains("shut down"),
        "graceful, from the guest: {}",
        stop.stdout
    );
    assert!(
        lab.vms().iter().all(|(_, running)| !running),
        "{:?}",
        lab.vms()
    );
    lab.ok(&["start"]);
    assert!(lab.vms().iter().all(|(_, running)| *running));
    assert_eq!(
        lab.ssh("dev-master", "ls /var/tmp/kept").code,
        0,
        "the disk was kept"
    );
}
