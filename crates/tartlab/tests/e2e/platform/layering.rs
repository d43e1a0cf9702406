//! The layers of `crates/tartlab/src`, held: each top-level module may name (`crate::X`)
//! only the modules docs/ARCHITECTURE.md ("Layers") allows it, so data keeps flowing one
//! way and a second provider or a new command never finds a cycle to untangle. A module
//! that needs a new edge changes the table here and in the doc, in the same commit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each module and the modules it may use. Leaves use none.
const ALLOWED: &[(&str, &[&str])] = &[
    (
        "cli",
        &[
            "lab", "engine", "provider", "guest", "ui", "state", "dial", "quote", "text", "files",
            "clock", "doctor", "error",
        ],
    ),
    (
        "engine",
        &[
            "lab", "provider", "guest", "state", "dial", "quote", "text", "files", "clock", "error",
        ],
    ),
    (
        "provider",
        &[
            "lab", "state", "dial", "quote", "text", "files", "clock", "doctor",
        ],
    ),
    ("guest", &["dial", "quote", "text", "files", "clock"]),
    ("ui", &["engine", "text", "files", "clock"]),
    ("state", &["lab", "text", "files", "clock"]),
    ("lab", &["text", "files"]),
    ("error", &["lab"]),
    ("doctor", &[]),
    ("dial", &[]),
    ("quote", &[]),
    ("text", &[]),
    ("files", &[]),
    ("clock", &[]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(path: &Path, found: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            rust_files(&entry.unwrap().path(), found);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        found.push(path.to_path_buf());
    }
}

/// Every `crate::NAME` a file's code names (comments left out), with the line it is on.
fn named_modules(text: &str) -> Vec<(String, usize)> {
    let mut named = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                named.push((name, i + 1));
            }
            rest = after;
        }
        // `use crate::{a, b}` names several.
        if let Some(group) = code.trim_start().strip_prefix("use crate::{") {
            for part in group.split([',', '}']) {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    named.push((name, i + 1));
                }
            }
        }
    }
    named
}

/// The top-level module a file belongs to (`engine/stages/ssh.rs` -> `engine`).
fn module_of(file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src()).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

#[test]
fn no_module_uses_one_its_layer_may_not() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(m, deps)| (*m, deps.iter().copied().collect()))
        .collect();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let Some(module) = module_of(file) else {
            continue;
        };
        let Some(may) = allowed.get(module.as_str()) else {
            wrong.push(format!(
                "{}: module `{module}` is not in the table of layers",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (used, line) in named_modules(&text) {
            if used != module && !may.contains(used.as_str()) && allowed.contains_key(used.as_str())
            {
                wrong.push(format!(
                    "{}:{line}: `{module}` uses `{used}`, which its layer may not",
                    file.display()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_table_is_the_one_the_architecture_doc_shows() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/ARCHITECTURE.md"),
    )
    .unwrap();
    for (module, deps) in ALLOWED {
        let row = if deps.is_empty() {
            format!("| `{module}` | (none: a leaf) |")
        } else {
            format!(
                "| `{module}` | {} |",
                deps.iter()
                    .map(|d| format!("`{d}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        assert!(
            doc.contains(&row),
            "docs/ARCHITECTURE.md lacks the row {row}"
        );
    }
}

#[test]
fn the_check_sees_a_use_that_breaks_the_layers() {
    let named = named_modules("use crate::engine::Context;\nuse crate::{dial, quote::quote};\n// crate::cli in a comment\nlet x = crate::provider::open(None);\n");
    let names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["engine", "dial", "quote", "provider"]);
}
