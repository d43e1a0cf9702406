//! tartlab as a library: the command line (`cli`), the lab file (`lab`), the lab's state on
//! disk (`state`), tart (`provider`), guests over SSH (`guest`), the lifecycle (`engine`) and
//! what the user sees (`ui`). `main.rs` only calls `cli::main`.

pub mod cli;
pub mod engine;
pub mod guest;
pub mod lab;
pub mod provider;
pub mod state;
pub mod ui;
