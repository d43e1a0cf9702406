//! A hostile neighbour: another user of the same Mac who can write where tartlab looks (a
//! shared directory above the lab, tartlab's own data directory). Each test plays the
//! attack through the binary; docs/RELIABILITY.md, "A hostile neighbour", lists them.

use std::path::Path;
use std::process::Command;

fn tartlab(dir: &Path, args: &[&str], data: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tartlab"))
        .args(args)
        .current_dir(dir)
        .env_remove("TARTLAB_FILE")
        .env_remove("SUDO_UID")
        .env("TARTLAB_DATA_DIR", data)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_labs_index_cut_short_is_moved_aside_with_a_warning_not_read_as_empty() {
    let top = tempfile::tempdir().unwrap();
    let data = top.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let index = data.join("labs.json");
    let cut = "{\n  \"/srv/a/tartlab.yaml\": {\n    \"lab\": \"a\",\n    \"file\": \"/srv/a/tart";
    std::fs::write(&index, cut).unwrap();
    let (code, _, stderr) = tartlab(top.path(), &["labs"], &data);
    assert_eq!(code, 0, "{stderr}");
    let aside: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("labs.json.broken-"))
        .collect();
    assert_eq!(aside.len(), 1, "moved aside: {aside:?}");
    assert_eq!(std::fs::read_to_string(&aside[0]).unwrap(), cut, "kept as it was");
    assert!(stderr.contains("warning: the list of labs"), "{stderr}");
    assert!(stderr.contains(&index.display().to_string()), "{stderr}");
    assert!(stderr.contains(&aside[0].display().to_string()), "{stderr}");
}
