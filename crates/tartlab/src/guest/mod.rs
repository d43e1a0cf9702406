//! Talking to a running VM: SSH (russh) over a TCP socket, and the quoting that every
//! remote command goes through.

pub mod quote;
pub mod ssh;
