//! Talking to a running VM: SSH over any byte stream (`ssh.rs`), commands run logged, masked
//! and timed (`runner.rs`), SFTP copies (`transfer.rs`), secret masking (`mask.rs`), and, by
//! name, the quoting every remote command goes through (`crate::quote`).

pub mod mask;
/// Quoting lives in the leaf `crate::quote` (the provider uses it too); kept here by name.
pub use crate::quote;
pub mod runner;
pub mod ssh;
pub mod transfer;
