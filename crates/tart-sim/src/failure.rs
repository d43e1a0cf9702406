//! How a tart command fails: the stderr text, its style (tart's plain RuntimeError text or
//! swift-argument-parser's `Error:` form) and the exit code (reference section 0.1).

use crate::args::UsageError;

#[derive(Debug)]
pub enum Failure {
    /// A `RuntimeError`: printed as is, no `Error:` prefix.
    Plain { code: i32, message: String },
    /// Any other error: `Error: <message>`, exit 1.
    Prefixed { message: String },
    /// A parse or validation error: full usage text, exit 64.
    Usage(UsageError),
    /// `tart exec`: the guest command's exit code, nothing printed.
    Exit(i32),
}

impl Failure {
    pub fn plain(code: i32, message: String) -> Failure {
        Failure::Plain { code, message }
    }

    /// A RuntimeError with exit code 1 (most cases).
    pub fn generic(message: String) -> Failure {
        Failure::plain(1, message)
    }

    pub fn prefixed(message: String) -> Failure {
        Failure::Prefixed { message }
    }

    pub fn vm_does_not_exist(name: &str) -> Failure {
        Failure::plain(2, format!("the specified VM \"{name}\" does not exist"))
    }

    pub fn vm_not_running(name: &str) -> Failure {
        Failure::plain(2, format!("VM \"{name}\" is not running"))
    }

    pub fn vm_is_running(name: &str) -> Failure {
        Failure::plain(1, format!("VM \"{name}\" is running"))
    }

    /// A RuntimeError thrown from `validate()` loses its exit code (trap 1).
    pub fn thrown_from_validate(self) -> Failure {
        match self {
            Failure::Plain { message, .. } => Failure::Prefixed { message },
            other => other,
        }
    }

    /// Prints to stderr and returns the process exit code.
    pub fn report(&self) -> i32 {
        match self {
            Failure::Plain { code, message } => {
                eprintln!("{message}");
                *code
            }
            Failure::Prefixed { message } => {
                eprintln!("Error: {message}");
                1
            }
            Failure::Usage(e) => {
                eprintln!("{}", e.render());
                64
            }
            Failure::Exit(code) => *code,
        }
    }
}

impl From<UsageError> for Failure {
    fn from(e: UsageError) -> Failure {
        Failure::Usage(e)
    }
}
