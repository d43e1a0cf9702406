//! tartlab as a library: the command line (`cli`) and the lab file (`lab`). `main.rs` only
//! calls `cli::main`.

pub mod cli;
pub mod lab;
