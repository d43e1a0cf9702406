//! Talking to a running VM: SSH over any byte stream (`ssh.rs`), commands run logged, masked
//! and timed (`runner.rs`), SFTP copies (`transfer.rs`), secret masking (`mask.rs`), and the
//! quoting every remote command goes through (`quote.rs`).

pub mod mask;
pub mod quote;
pub mod runner;
pub mod ssh;
pub mod transfer;
