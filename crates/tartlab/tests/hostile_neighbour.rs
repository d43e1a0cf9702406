//! A hostile neighbour: another user of the same Mac who can write where tartlab looks (a
//! shared directory above the lab, tartlab's own data directory). Each test plays the
//! attack through the binary; docs/RELIABILITY.md, "A hostile neighbour", lists them.

use std::os::unix::fs::chown;
use std::path::Path;
use std::process::Command;

/// A uid no account here has: the neighbour.
const NEIGHBOUR: u32 = 4242;

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
fn a_lab_file_another_user_owns_in_a_parent_directory_is_used_only_when_named_with_f() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test needs root (chown)"
    );
    let shared = tempfile::tempdir().unwrap();
    let data = shared.path().join("data");
    let planted = shared.path().join("tartlab.yaml");
    std::fs::write(
        &planted,
        "lab: planted\nclusters:\n  - name: dev\n    nodes: [{ name: a }]\n",
    )
    .unwrap();
    chown(&planted, Some(NEIGHBOUR), None).unwrap();
    let work = shared.path().join("work/deeper");
    std::fs::create_dir_all(&work).unwrap();

    let (code, stdout, stderr) = tartlab(&work, &["validate"], &data);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(!stdout.contains("is valid"), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "found {}, but it belongs to uid {NEIGHBOUR}, not to you",
            planted.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("`-f {}`", planted.display())),
        "{stderr}"
    );
    // `up` stops there too, before anything is made.
    let (code, _, stderr) = tartlab(&work, &["up"], &data);
    assert_eq!(code, 2, "{stderr}");
    assert!(!shared.path().join(".tartlab").exists());

    // Named, it is the user's choice.
    let (code, stdout, stderr) = tartlab(&work, &["validate", "-f", "../../tartlab.yaml"], &data);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("lab `planted` is valid"), "{stdout}");

    // A directory the neighbour owns is not searched above, even for root's own file.
    chown(&planted, Some(0), None).unwrap();
    chown(shared.path().join("work"), Some(NEIGHBOUR), None).unwrap();
    let (code, _, stderr) = tartlab(&work, &["validate"], &data);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "up to {}, which belongs to uid {NEIGHBOUR}",
            shared.path().join("work").display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("-f FILE"), "{stderr}");
    chown(shared.path().join("work"), Some(0), None).unwrap();
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
    assert_eq!(
        std::fs::read_to_string(&aside[0]).unwrap(),
        cut,
        "kept as it was"
    );
    assert!(stderr.contains("warning: the list of labs"), "{stderr}");
    assert!(stderr.contains(&index.display().to_string()), "{stderr}");
    assert!(stderr.contains(&aside[0].display().to_string()), "{stderr}");
}
