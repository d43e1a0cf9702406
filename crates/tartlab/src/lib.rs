//! tartlab as a library. Data flows one way: `cli` (parse) -> `lab` (load, validate, expand
//! into nodes) -> `engine` (plan, then run the stages, emitting events) -> `provider` (how
//! VMs are made: tart) and `guest` (how a running VM is talked to: SSH) -> `ui` (what the
//! user sees). `state` is the lab's `.tartlab/` directory; `error` holds the exit codes and
//! the one error type `main.rs` prints.

pub mod cli;
pub mod clock;
pub mod dial;
pub mod doctor;
pub mod engine;
pub mod error;
pub mod files;
pub mod guest;
pub mod lab;
pub mod provider;
pub mod quote;
pub mod state;
pub mod text;
pub mod ui;
