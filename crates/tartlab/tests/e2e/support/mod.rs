//! The end-to-end harness, in three parts: `run` needs no root (the binary and its output),
//! `sim` holds tart-sim and its guests, `fixtures` the labs several tests share; `orchard`
//! runs the real Orchard controller and workers.
#![allow(dead_code)]

pub mod fixtures;
pub mod orchard;
pub mod run;
pub mod sim;

pub use fixtures::*;
pub use run::*;
pub use sim::*;
