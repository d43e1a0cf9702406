//! Completion at the shell's TAB (issue 30): the script `tartlab completions SHELL` prints
//! calls the binary back with `COMPLETE=SHELL` and the words typed so far; clap_complete's
//! engine answers with the subcommands and flags, and, from here, with what the lab file
//! (found as usual, or named by `-f` among the words, or `TARTLAB_FILE`) names: node names
//! and selectors, the step names of `--reprovision=`, the names of the lab's snapshots.
//! A lab that cannot be read completes nothing: never an error at a TAB.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};
use clap_complete::env::{EnvCompleter, Fish, Zsh};

use super::{Cli, FileArgs, LabSnapshot};

/// The variable the scripts set to ask for completions.
const VAR: &str = "COMPLETE";

/// Answers a completion request (and exits) when the shell's script made one; else
/// returns at once. Called before anything else runs or prints.
pub fn answer_if_asked() {
    clap_complete::CompleteEnv::with_factory(Cli::command)
        .var(VAR)
        .complete();
}

/// Bash's script. clap_complete's own takes bash's words, which `COMP_WORDBREAKS` cuts at
/// `=` and `:` (`--reprovision=j` is three words to bash, and its TAB found nothing): this
/// one splits the line up to the cursor at blanks, as tartlab reads its arguments, and
/// hands bash back only the part of each answer after the last `=` or `:` of the word, the
/// part bash replaces.
const BASH: &str = r#"
_clap_complete_tartlab() {
    local line="${COMP_LINE:0:COMP_POINT}"
    local -a words
    read -ra words <<< "$line"
    if [[ -z "$line" || "$line" =~ [[:space:]]$ ]]; then
        words+=("")
    fi
    local index=$(( ${#words[@]} - 1 ))
    local cur="${words[index]}"
    local IFS=$''
    if compopt +o nospace 2> /dev/null; then
        local space=false
    else
        local space=true
    fi
    COMPREPLY=( $(         _CLAP_IFS="$IFS"         _CLAP_COMPLETE_INDEX="$index"         _CLAP_COMPLETE_COMP_TYPE="${COMP_TYPE}"         _CLAP_COMPLETE_SPACE="$space"         COMPLETE="bash"         COMPLETER -- "${words[@]}"     ) )
    if [[ $? != 0 ]]; then
        unset COMPREPLY
        return
    fi
    if [[ $space == false ]] && [[ "${COMPREPLY-}" =~ [=/:]$ ]]; then
        compopt -o nospace
    fi
    local cut="${cur%"${cur##*[=:]}"}"
    if [[ -n "$cut" ]]; then
        COMPREPLY=( "${COMPREPLY[@]#"$cut"}" )
    fi
}
if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -o nospace -o bashdefault -o nosort -F _clap_complete_tartlab tartlab
else
    complete -o nospace -o bashdefault -F _clap_complete_tartlab tartlab
fi
"#;

/// The script that registers completion in `shell`. At each TAB it calls back `tartlab`
/// as the shell finds it on the PATH, the command being completed: never the path this
/// binary was run by, which a package manager's build (Homebrew's versioned keg) or an
/// upgrade would leave stale.
pub fn registration(shell: clap_complete::Shell) -> std::io::Result<Vec<u8>> {
    let completer = "tartlab";
    let mut out = Vec::new();
    let registering: &dyn EnvCompleter = match shell {
        clap_complete::Shell::Zsh => &Zsh,
        clap_complete::Shell::Fish => &Fish,
        _ => return Ok(BASH.replace("COMPLETER", completer).into_bytes()),
    };
    registering.write_registration(VAR, "tartlab", "tartlab", completer, &mut out)?;
    if shell == clap_complete::Shell::Zsh {
        // Installed as `_tartlab` in $fpath, the file is the completion function compinit
        // autoloads: the first TAB must complete too, not only register.
        out.extend_from_slice(b"\nif [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then\n  _clap_dynamic_completer_tartlab \"$@\"\nfi\n");
    }
    Ok(out)
}

/// The lab file the words being completed name with `-f FILE`, `-fFILE` or `--file[=]FILE`.
fn named_file(words: &[OsString]) -> Option<PathBuf> {
    let words: Vec<String> = words
        .iter()
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    words.iter().enumerate().find_map(|(i, word)| {
        if word == "-f" || word == "--file" {
            words.get(i + 1).map(PathBuf::from)
        } else if let Some(file) = word.strip_prefix("--file=") {
            Some(PathBuf::from(file))
        } else {
            word.strip_prefix("-f")
                .filter(|rest| !rest.is_empty() && !word.starts_with("--"))
                .map(PathBuf::from)
        }
    })
}

/// What `f` makes of the lab being completed, or nothing when it cannot be read.
fn from_lab(f: impl FnOnce(&LabSnapshot) -> Vec<CompletionCandidate>) -> Vec<CompletionCandidate> {
    let words: Vec<OsString> = std::env::args_os().collect();
    let args = FileArgs {
        file: named_file(&words),
        json: true,
    };
    LabSnapshot::open(&args)
        .map(|lab| f(&lab))
        .unwrap_or_default()
}

fn candidate(value: &str, help: String) -> CompletionCandidate {
    CompletionCandidate::new(value).help(Some(help.into()))
}

/// The lab's nodes by name, each with its cluster and role.
fn node_names(lab: &LabSnapshot) -> Vec<CompletionCandidate> {
    lab.lab
        .nodes
        .iter()
        .map(|n| {
            candidate(
                &n.vm_name,
                format!("cluster {}, role {}", n.cluster, n.role),
            )
        })
        .collect()
}

/// A node (`ssh`, `logs`, `forward`): its name.
pub fn node() -> ArgValueCandidates {
    ArgValueCandidates::new(|| from_lab(node_names))
}

/// Selectors (`up`, `stop`, `down`, `exec`, ...): each node's name, `cluster=NAME`,
/// `role=NAME` and `all`.
pub fn selectors() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        from_lab(|lab| {
            let mut out = node_names(lab);
            let mut seen = std::collections::BTreeSet::new();
            for n in &lab.lab.nodes {
                for selector in [format!("cluster={}", n.cluster), format!("role={}", n.role)] {
                    if seen.insert(selector.clone()) {
                        out.push(candidate(&selector, "the nodes it names".into()));
                    }
                }
            }
            out.push(candidate("all", "every node".into()));
            out
        })
    })
}

/// The lab's provisioning steps (`--reprovision=STEP`).
pub fn steps() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        from_lab(|lab| {
            lab.lab
                .file
                .provision
                .iter()
                .map(|s| candidate(&s.name, format!("a step, on {}", s.on)))
                .collect()
        })
    })
}

/// The lab's snapshots (`snapshot restore NAME`, `snapshot delete NAME`).
pub fn snapshots() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        from_lab(|lab| {
            lab.state
                .snapshots
                .keys()
                .map(|name| candidate(name, "a snapshot of the lab".into()))
                .collect()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_file_is_read_from_the_words_being_completed() {
        let words = |w: &[&str]| w.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            named_file(&words(&[
                "tartlab", "--", "tartlab", "-f", "x.yaml", "ssh", ""
            ])),
            Some(PathBuf::from("x.yaml"))
        );
        assert_eq!(
            named_file(&words(&["tartlab", "up", "--file=y.json"])),
            Some(PathBuf::from("y.json"))
        );
        assert_eq!(
            named_file(&words(&["tartlab", "up", "-fz"])),
            Some(PathBuf::from("z"))
        );
        assert_eq!(named_file(&words(&["tartlab", "up", "--force"])), None);
    }
}
