//! tartlab: labs of Linux VMs on Apple Silicon Macs with tart, from one declarative file.
//! Runs the command line, and prints the error a command stopped with, once, here.

fn main() {
    let code = match tartlab::cli::run() {
        Ok(exit) => exit.code(),
        Err(error) => {
            error.print();
            error.exit().code()
        }
    };
    std::process::exit(code);
}
