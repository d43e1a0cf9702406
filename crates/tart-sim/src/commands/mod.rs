//! Dispatch from a tart command line to the subcommand that implements it, with tart's
//! root behaviour: `--version`, help, unknown subcommands, and those the simulator lacks.

mod control;
mod manage;
mod run;

use std::io::Write;

use crate::args::{self, ParseOutcome, UsageError};
use crate::failure::Failure;
use crate::spec;
use crate::storage::Home;

pub const VERSION: &str = "2.31.0";

fn print(text: &str) {
    let mut stdout = std::io::stdout();
    let _ = write!(stdout, "{text}");
}

/// Runs one tart command line (without the program name); returns the exit code.
pub fn main(words: &[String], as_simulator: bool) -> i32 {
    match dispatch(words, as_simulator) {
        Ok(()) => 0,
        Err(failure) => failure.report(),
    }
}

fn dispatch(words: &[String], as_simulator: bool) -> Result<(), Failure> {
    let Some(first) = words.first() else {
        print(&spec::root_help());
        return Ok(());
    };
    match first.as_str() {
        "--version" => {
            print(&format!("{VERSION}\n"));
            return Ok(());
        }
        "-h" | "--help" => {
            print(&spec::root_help());
            return Ok(());
        }
        "help" => return help(words.get(1).map(String::as_str)),
        "reap" if as_simulator => return control::reap(&Home::open()?),
        _ => {}
    }
    let name = first.as_str();
    let Some(command) = spec::command(name) else {
        if spec::SUBCOMMANDS.iter().any(|(n, _)| *n == name) {
            return Err(Failure::generic(format!(
                "tart-sim: 'tart {name}' is not supported by the simulator"
            )));
        }
        return Err(UsageError::root(format!("Unexpected argument '{name}'")).into());
    };
    let parsed = match args::parse(&command, &words[1..])? {
        ParseOutcome::Help => {
            print(&args::render_help(&command));
            return Ok(());
        }
        ParseOutcome::Parsed(p) => p,
    };
    // Every command except pull and clone garbage-collects tmp/ first; the simulator's
    // staging directories are removed where they are made, so there is nothing to collect.
    let home = Home::open()?;
    match name {
        "clone" => manage::clone(&home, &command, &parsed),
        "run" => run::run(&home, &command, &parsed),
        "set" => manage::set(&home, &command, &parsed),
        "get" => manage::get(&home, &command, &parsed),
        "list" => manage::list(&home, &command, &parsed),
        "ip" => control::ip(&home, &command, &parsed),
        "exec" => control::exec(&home, &command, &parsed),
        "pull" => manage::pull(&home, &command, &parsed),
        "rename" => manage::rename(&home, &command, &parsed),
        "stop" => control::stop(&home, &command, &parsed),
        "delete" => manage::delete(&home, &command, &parsed),
        "fqn" => manage::fqn(&home, &command, &parsed),
        _ => Err(Failure::generic(format!("tart-sim: no handler for {name}"))),
    }
}

fn help(sub: Option<&str>) -> Result<(), Failure> {
    match sub.and_then(spec::command) {
        Some(command) => print(&args::render_help(&command)),
        None => print(&spec::root_help()),
    }
    Ok(())
}
