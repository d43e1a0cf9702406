//! tart-sim: a simulator of the tart 2.31 command line for Linux, whose VMs are real
//! sandboxes running sshd on their own 127.x address. Install it as `tart` on a private
//! PATH (and as `softnet`, which it also answers as); see the crate README for behaviour,
//! knobs and limits.

mod args;
mod commands;
mod failure;
mod guest;
mod images;
mod knobs;
mod leases;
mod network;
mod output;
mod softnet;
mod spec;
mod storage;
mod virtiofs;

fn main() {
    let mut argv = std::env::args();
    let program = argv.next().unwrap_or_default();
    let name = std::path::Path::new(&program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let words: Vec<String> = argv.collect();
    let code = match name.as_str() {
        "softnet" => softnet::main(&words),
        // Started by `tart run` for a systemd guest (guest/systemd.rs), never by a user.
        _ if words.first().is_some_and(|w| w == "__guest-keeper") => {
            guest::systemd::keeper_main(&words[1..])
        }
        other => commands::main(&words, other == "tart-sim"),
    };
    std::process::exit(code);
}
