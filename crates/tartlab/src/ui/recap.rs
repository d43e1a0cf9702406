//! The recap at the end of a changing command, as the text sinks show it: a table on stdout
//! (node, result, address, time, what was done), each failure with its stage, message and
//! hint on stderr (a failure before any that refers to it), one line that counts them, and
//! the run's warnings again (an orphan kept, a name kept), so the end of the output says
//! everything the user should act on. The JSON sinks write the same reports as data (`json_lines.rs`).

use crate::engine::stages::actions_text;
use crate::engine::{Failure, NodeReport};

/// Prints the recap of `verb` for these reports, and the run's warnings.
pub fn show(verb: &str, reports: &[NodeReport], warnings: &[String]) {
    let failed = reports.iter().filter(|r| r.failure.is_some()).count();
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            let (result, detail) = match &r.failure {
                Some(f) => ("failed".to_string(), format!("at {}", f.stage)),
                None if r.actions.is_empty() => ("ok".to_string(), "unchanged".to_string()),
                None => ("ok".to_string(), actions_text(&r.actions)),
            };
            vec![
                r.node.clone(),
                result,
                r.ip.clone().unwrap_or_else(|| "-".into()),
                format!("{:.1}s", r.seconds),
                detail,
            ]
        })
        .collect();
    if !rows.is_empty() {
        super::out(&super::table(
            &["NODE", "RESULT", "IP", "TIME", "DONE"],
            &rows,
        ));
    }
    let mut failures: Vec<(&NodeReport, &Failure)> = reports
        .iter()
        .filter_map(|r| r.failure.as_ref().map(|f| (r, f)))
        .collect();
    failures.sort_by_key(|(_, f)| f.caused_by.is_some());
    for (r, f) in failures {
        eprintln!(
            "error: {} failed at stage `{}`: {}",
            r.node, f.stage, f.message
        );
        if !f.hint.is_empty() {
            eprintln!("  hint: {}", f.hint);
        }
    }
    let warn = || {
        for warning in warnings {
            eprintln!("warning: {warning}");
        }
    };
    if reports.is_empty() {
        super::out(&format!("{verb}: nothing to do"));
        warn();
        return;
    }
    let ok = reports.len() - failed;
    super::out(&format!(
        "{verb}: {ok} of {} node{} ok{}",
        reports.len(),
        if reports.len() == 1 { "" } else { "s" },
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    ));
    warn();
}
