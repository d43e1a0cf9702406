//! tart-sim: a simulator of the tart 2.31 command line for Linux, whose VMs are real
//! sandboxes running sshd on their own 127.x address. Install it as `tart` on a private
//! PATH; see the crate README for behaviour, knobs and limits.

mod args;
mod commands;
mod failure;
mod guest;
mod images;
mod knobs;
mod leases;
mod output;
mod spec;
mod storage;

fn main() {
    let mut argv = std::env::args();
    let program = argv.next().unwrap_or_default();
    let as_simulator = std::path::Path::new(&program)
        .file_name()
        .is_some_and(|n| n == "tart-sim");
    let words: Vec<String> = argv.collect();
    std::process::exit(commands::main(&words, as_simulator));
}
