//! Getting started and fitting in: `init` (a lab file, and the scripts it needs, from a
//! template built into the binary), `completions` (bash, zsh, fish) and `man` (the manual
//! pages, from the same definitions as `--help`).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{out, Cli};
use crate::error::{Error, Exit, Result};
use crate::lab::FILE_NAMES;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    /// One Ubuntu node, every setting left to its default
    Minimal,
    /// The seed report's lab: three clusters of a master and two workers, a user, /etc/hosts
    Seed,
    /// A k3s cluster: the master passes its join token to the workers (downloads k3s: a Mac)
    K3s,
}

#[derive(clap::Args, Debug)]
#[command(
    after_long_help = "Examples:\n  tartlab init\n  tartlab init --template k3s my-cluster && cd my-cluster && tartlab up"
)]
pub struct InitArgs {
    /// What to start from
    #[arg(long, short = 't', value_enum, default_value_t = Template::Minimal)]
    pub template: Template,
    /// Where to write it (made if it does not exist; default: here)
    pub dir: Option<PathBuf>,
}

/// A template's files: the lab file first, then what it refers to (and each one's mode).
fn files(template: Template) -> Vec<(&'static str, &'static str, u32)> {
    match template {
        Template::Minimal => vec![(
            "tartlab.yaml",
            include_str!("../../../../examples/minimal.yaml"),
            0o644,
        )],
        Template::Seed => vec![(
            "tartlab.yaml",
            include_str!("../../../../examples/seed-lab.yaml"),
            0o644,
        )],
        Template::K3s => vec![
            (
                "tartlab.yaml",
                include_str!("../../../../examples/k3s-lab.yaml"),
                0o644,
            ),
            (
                "files/motd",
                include_str!("../../../../examples/files/motd"),
                0o644,
            ),
            (
                "scripts/k3s-server.sh",
                include_str!("../../../../examples/scripts/k3s-server.sh"),
                0o755,
            ),
            (
                "scripts/k3s-agent.sh",
                include_str!("../../../../examples/scripts/k3s-agent.sh"),
                0o755,
            ),
        ],
    }
}

/// The directory's name as a lab name, when it makes one.
fn lab_name(dir: &Path) -> Option<String> {
    let base = std::path::absolute(dir).ok()?;
    let name: String = base
        .file_name()?
        .to_string_lossy()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = name.trim_matches('-').to_string();
    (name.starts_with(|c: char| c.is_ascii_lowercase()) && name.len() <= 40).then_some(name)
}

pub fn init(args: &InitArgs) -> Result<Exit> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    if let Some(existing) = FILE_NAMES.iter().map(|n| dir.join(n)).find(|p| p.exists()) {
        return Err(Error::usage(
            format!(
                "{} exists already; init never overwrites",
                existing.display()
            ),
            "edit it, or init another directory: `tartlab init DIR`",
        ));
    }
    let files = files(args.template);
    if let Some((name, _, _)) = files.iter().find(|(name, _, _)| dir.join(name).exists()) {
        return Err(Error::usage(
            format!(
                "{} exists already; init never overwrites",
                dir.join(name).display()
            ),
            "move it away, or init another directory",
        ));
    }
    let written = write_all(&dir, &files, lab_name(&dir))
        .map_err(|e| Error::fatal(format!("cannot write into {}: {e}", dir.display()), ""))?;
    for path in &written {
        out(&format!("wrote {}", path.display()));
    }
    let cd = if dir == Path::new(".") {
        String::new()
    } else {
        format!("cd {} && ", dir.display())
    };
    out(&format!(
        "next: {cd}tartlab up   (every key of the lab file: docs/LAB-FILE.md, or `tartlab schema`)"
    ));
    Ok(Exit::Ok)
}

/// Writes the files (each new: never over one, never through a link), the lab file named
/// after the directory.
fn write_all(
    dir: &Path,
    files: &[(&str, &str, u32)],
    name: Option<String>,
) -> std::io::Result<Vec<PathBuf>> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    // Every directory first: a link on the way stops init before it writes anything.
    for (relative, _, _) in files {
        make_parents(dir, Path::new(relative))?;
    }
    let mut written = Vec::new();
    for (i, (relative, text, mode)) in files.iter().enumerate() {
        let path = dir.join(relative);
        let text = match (&name, i) {
            (Some(name), 0) => renamed(text, name),
            _ => text.to_string(),
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)?;
        file.write_all(text.as_bytes())?;
        file.set_permissions(std::fs::Permissions::from_mode(*mode))?;
        written.push(path);
    }
    Ok(written)
}

/// Makes the directories between `dir` and a file of the template, one at a time, refusing
/// a link on the way: a planted `DIR/scripts -> elsewhere` would put the files elsewhere.
fn make_parents(dir: &Path, relative: &Path) -> std::io::Result<()> {
    let mut at = dir.to_path_buf();
    let Some(parent) = relative.parent() else {
        return Ok(());
    };
    for part in parent.components() {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(std::io::Error::other(format!(
                    "{} is a symbolic link; init writes no file through a link (remove it, or init another directory)",
                    at.display()
                )));
            }
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(std::io::Error::other(format!(
                    "{} exists and is not a directory",
                    at.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(&at)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The lab file with its `lab:` line naming this lab.
fn renamed(text: &str, name: &str) -> String {
    text.lines()
        .map(|line| {
            if line.starts_with("lab: ") {
                format!("lab: {name}")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[derive(clap::Args, Debug)]
#[command(
    after_long_help = "Examples:\n  tartlab completions bash > ~/.local/share/bash-completion/completions/tartlab\n  tartlab completions zsh > \"${fpath[1]}/_tartlab\"\n  tartlab completions fish > ~/.config/fish/completions/tartlab.fish"
)]
pub struct CompletionsArgs {
    /// The shell
    pub shell: clap_complete::Shell,
}

pub fn completions(args: &CompletionsArgs) -> Result<Exit> {
    let script = super::complete::registration(args.shell)
        .map_err(|e| Error::fatal(format!("cannot write the completion script: {e}"), ""))?;
    std::io::stdout()
        .write_all(&script)
        .map_err(|e| Error::fatal(format!("cannot write the completion script: {e}"), ""))?;
    Ok(Exit::Ok)
}

#[derive(clap::Args, Debug)]
#[command(
    after_long_help = "Examples:\n  tartlab man | man -l -\n  sudo tartlab man --dir /usr/local/share/man/man1"
)]
pub struct ManArgs {
    /// Write tartlab.1 and one page per command (tartlab-up.1, ...) into this directory
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn man(args: &ManArgs) -> Result<Exit> {
    let command = <Cli as clap::CommandFactory>::command();
    match &args.dir {
        Some(dir) => {
            let cannot = |e: std::io::Error| {
                Error::fatal(format!("cannot write into {}: {e}", dir.display()), "")
            };
            std::fs::create_dir_all(dir).map_err(cannot)?;
            let mut command = command.disable_help_subcommand(true);
            command.build();
            for (name, page) in man_pages(command).map_err(cannot)? {
                // A new file renamed over the name: a link planted there is replaced, as
                // install(1) does, never written through.
                crate::state::write_atomic(&dir.join(&name), &page, 0o644).map_err(cannot)?;
            }
            out(&format!("wrote the man pages into {}", dir.display()));
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .map_err(|e| Error::fatal(format!("cannot render the man page: {e}"), ""))?;
            let _ = std::io::stdout().write_all(&page);
        }
    }
    Ok(Exit::Ok)
}

/// Every page `clap_mangen::generate_to` would write (the command's, then one per visible
/// subcommand, recursively), each file name with its page, rendered in memory.
fn man_pages(command: clap::Command) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut pages = Vec::new();
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        pages.extend(man_pages(sub.clone())?);
    }
    let man = clap_mangen::Man::new(command);
    let mut page = Vec::new();
    man.render(&mut page)?;
    pages.push((man.get_filename(), page));
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lab_takes_its_directory_name_when_it_makes_one() {
        assert_eq!(
            lab_name(Path::new("/tmp/My Cluster")).as_deref(),
            Some("my-cluster")
        );
        assert_eq!(lab_name(Path::new("/tmp/123")), None);
        assert_eq!(
            renamed("# comment\nlab: minimal\nclusters: []\n", "mine"),
            "# comment\nlab: mine\nclusters: []\n"
        );
    }
}
