//! tartlab: labs of Linux VMs on Apple Silicon Macs with tart, from one declarative file.

fn main() {
    std::process::exit(tartlab::cli::main());
}
