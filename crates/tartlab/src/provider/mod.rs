//! How VMs are made. Only the local `tart` CLI so far; the Orchard backend will sit beside it
//! behind the same calls (clone, set, run, ip, stop, delete, list).

pub mod leases;
pub mod tart;

pub use tart::{ListEntry, Tart, TartError};
