//! Commands that manage stored VMs: `clone`, `set`, `get`, `list`, `rename`, `delete`,
//! `pull` (reference sections 1.2, 1.4 to 1.6, 1.10, 1.11, 1.15 and 2).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use serde_json::{json, Value};

use crate::args::{CommandSpec, Parsed, UsageError};
use crate::failure::Failure;
use crate::images::{self, RemoteName};
use crate::output;
use crate::storage::{self, Home, VmConfig, VmDir};

fn print(text: &str) {
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{text}");
}

fn io_failure(e: std::io::Error) -> Failure {
    Failure::generic(e.to_string())
}

pub fn clone(home: &Home, spec: &CommandSpec, p: &Parsed) -> Result<(), Failure> {
    let source = p.positional("source-name").unwrap_or_default();
    let new_name = p.positional("new-name").unwrap_or_default();
    if new_name.contains('/') {
        return Err(UsageError::for_command(
            spec,
            "<new-name> should be a local name".into(),
            None,
        )
        .into());
    }
    if p.value("concurrency") == Some("0") {
        return Err(UsageError::for_command(
            spec,
            "network concurrency cannot be less than 1".into(),
            None,
        )
        .into());
    }
    p.check_leftovers(spec)?;
    let source_dir = match RemoteName::parse(source) {
        Some(remote) => {
            let remote = remote?;
            match remote.cached_dir(home) {
                Some(dir) => dir,
                None => images::pull(home, &remote, false)?,
            }
        }
        None => home.open_vm(source)?.path,
    };
    let source_config = VmConfig::read(&source_dir.join("config.json"))?;

    let _global = home.global_lock().map_err(io_failure)?;
    let mac_taken = home.local_vm_names().iter().any(|n| {
        VmConfig::read(&home.vm_dir(n).join("config.json"))
            .is_ok_and(|c| c.mac() == source_config.mac())
    });
    let staging = home
        .tmp_dir()
        .join(storage::hex(&storage::random_bytes::<16>()));
    let copied = copy_vm(&source_dir, &staging, mac_taken);
    if let Err(e) = copied {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }
    replace_dir(home, &staging, &home.vm_dir(new_name)).map_err(io_failure)
}

fn copy_vm(from: &Path, to: &Path, new_mac: bool) -> Result<(), Failure> {
    fs::create_dir_all(to).map_err(io_failure)?;
    let mut config = VmConfig::read(&from.join("config.json"))?;
    if new_mac {
        config.set_mac(&storage::random_mac());
        let _ = fs::remove_file(to.join("state.vzvmsave"));
    }
    config.write(&to.join("config.json"))?;
    storage::clone_file(&from.join("nvram.bin"), &to.join("nvram.bin")).map_err(io_failure)?;
    storage::clone_file(&from.join("disk.img"), &to.join("disk.img")).map_err(io_failure)?;
    if from.join("guest").is_dir() {
        copy_guest(&from.join("guest"), &to.join("guest"))?;
    }
    Ok(())
}

/// The guest layers hold overlayfs whiteouts and xattrs: `cp -a` keeps them.
fn copy_guest(from: &Path, to: &Path) -> Result<(), Failure> {
    let status = Command::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(from)
        .arg(to)
        .status()
        .map_err(io_failure)?;
    if !status.success() {
        return Err(Failure::generic(format!(
            "tart-sim: copying {} failed",
            from.display()
        )));
    }
    let _ = fs::remove_file(to.join("console.log"));
    Ok(())
}

/// `FileManager.replaceItemAt`: silently replaces whatever is at `target`, even a running VM
/// (whose `tart run` keeps its now-orphaned files).
fn replace_dir(home: &Home, staging: &Path, target: &Path) -> std::io::Result<()> {
    if target.exists() {
        let old = home.tmp_dir().join(format!(
            "replaced-{}",
            storage::hex(&storage::random_bytes::<8>())
        ));
        fs::rename(target, &old)?;
        fs::rename(staging, target)?;
        let _ = fs::remove_dir_all(&old);
        return Ok(());
    }
    fs::rename(staging, target)
}

pub fn set(home: &Home, spec: &CommandSpec, p: &Parsed) -> Result<(), Failure> {
    p.check_leftovers(spec)?;
    let vm = home.open_vm(p.positional("name").unwrap_or_default())?;
    let mut config = vm.read_config()?;
    if let Some(cpu) = p.value("cpu").and_then(|v| v.parse::<u64>().ok()) {
        if cpu < 1 {
            return Err(Failure::prefixed("LessThanMinimalResourcesError: VM should have 1 CPU cores at minimum (requested 0)".into()));
        }
        config.fields.insert("cpuCount".into(), cpu.into());
    }
    if let Some(memory) = p.value("memory").and_then(|v| v.parse::<u64>().ok()) {
        if memory < 128 {
            return Err(Failure::prefixed(format!("LessThanMinimalResourcesError: VM should have 128 megabytes of memory at minimum (requested {memory})")));
        }
        config
            .fields
            .insert("memorySize".into(), (memory << 20).into());
    }
    if let Some(display) = p.value("display") {
        if let Some(d) = parse_display(display) {
            config.fields.insert("display".into(), d);
        }
    }
    match (p.flag("display-refit"), p.flag("no-display-refit")) {
        (true, _) => config.fields.insert("displayRefit".into(), true.into()),
        (_, true) => config.fields.insert("displayRefit".into(), false.into()),
        _ => config.fields.remove("displayRefit"),
    };
    if p.flag("random-mac") {
        config.set_mac(&storage::random_mac());
    }
    if let Some(path) = p.value("disk") {
        storage::copy_sparse(Path::new(path), &vm.disk_path()).map_err(io_failure)?;
    }
    if let Some(gb) = p.value("disk-size").and_then(|v| v.parse::<u64>().ok()) {
        let current = fs::metadata(vm.disk_path()).map(|m| m.len()).unwrap_or(0);
        let current_gb = current / 1_000_000_000;
        if gb * 1_000_000_000 < current {
            return Err(Failure::generic(format!(
                "new disk size of {gb} GB should be larger than the current disk size of {current_gb} GB"
            )));
        }
        let f = fs::OpenOptions::new()
            .write(true)
            .open(vm.disk_path())
            .map_err(io_failure)?;
        f.set_len(gb * 1_000_000_000).map_err(io_failure)?;
    }
    config.write(&vm.config_path())
}

/// `WIDTHxHEIGHT[pt|px]`; junk gives 0x0, which leaves the display unchanged.
fn parse_display(text: &str) -> Option<Value> {
    let (dims, unit) = match text {
        t if t.ends_with("pt") => (&t[..t.len() - 2], Some("pt")),
        t if t.ends_with("px") => (&t[..t.len() - 2], Some("px")),
        t => (t, None),
    };
    let (w, h) = dims.split_once('x')?;
    let (w, h) = (w.parse::<u64>().ok()?, h.parse::<u64>().ok()?);
    if w == 0 || h == 0 {
        return None;
    }
    let mut d = json!({"width": w, "height": h});
    if let Some(u) = unit {
        d["unit"] = u.into();
    }
    Some(d)
}

pub fn get(home: &Home, spec: &CommandSpec, p: &Parsed) -> Result<(), Failure> {
    p.check_leftovers(spec)?;
    let vm = home.open_vm(p.positional("name").unwrap_or_default())?;
    let config = vm.read_config()?;
    let (apparent, allocated) = vm.sizes();
    let display = config.fields.get("display").cloned().unwrap_or(Value::Null);
    let display = format!(
        "{}x{}{}",
        display["width"].as_u64().unwrap_or(1024),
        display["height"].as_u64().unwrap_or(768),
        display["unit"].as_str().unwrap_or("")
    );
    let os = match config.str_field("os").as_str() {
        "" => "darwin".to_string(),
        other => other.to_string(),
    };
    let disk_format = match config.str_field("diskFormat").as_str() {
        "" => "raw".to_string(),
        other => other.to_string(),
    };
    let size = format!("{:.3}", allocated as f64 / 1e9);
    let state = vm.state();
    if p.value("format") == Some("json") {
        let v = json!({
            "OS": os, "CPU": config.cpu(), "Memory": config.memory_mib(),
            "Disk": apparent / 1_000_000_000, "DiskFormat": disk_format, "Size": size,
            "Display": display, "Running": state == "running", "State": state,
        });
        print(&output::apple_json(&v));
    } else {
        let row = vec![
            os,
            config.cpu().to_string(),
            config.memory_mib().to_string(),
            (apparent / 1_000_000_000).to_string(),
            disk_format,
            size,
            display,
            state.to_string(),
        ];
        print(&output::text_table(
            &[
                "OS",
                "CPU",
                "Memory",
                "Disk",
                "DiskFormat",
                "Size",
                "Display",
                "State",
            ],
            &[row],
        ));
    }
    Ok(())
}

struct ListRow {
    source: &'static str,
    name: String,
    disk: u64,
    size: u64,
    accessed: SystemTime,
    running: bool,
    state: &'static str,
}

/// One row of `tart list` for a VM or cache directory.
fn list_row(source: &'static str, vm: VmDir, state: &'static str) -> ListRow {
    let (apparent, allocated) = vm.sizes();
    ListRow {
        source,
        disk: apparent / 1_000_000_000,
        size: allocated / 1_000_000_000,
        accessed: vm.accessed(),
        running: state == "running",
        state,
        name: vm.name,
    }
}

/// The rows of `tart list`: local VMs, then OCI entries, as `--source` asks.
fn list_rows(home: &Home, source: Option<&str>) -> Vec<ListRow> {
    let mut rows = Vec::new();
    if source != Some("oci") {
        for name in home.local_vm_names() {
            let vm = VmDir {
                path: home.vm_dir(&name),
                name,
            };
            let state = vm.state();
            rows.push(list_row("local", vm, state));
        }
    }
    if source != Some("local") {
        for (name, dir) in images::cache_entries(home) {
            rows.push(list_row("OCI", VmDir { path: dir, name }, "stopped"));
        }
    }
    rows
}

/// tart's text table: `Source Name Disk Size Accessed State`.
fn list_text(rows: &[ListRow]) -> String {
    let now = SystemTime::now();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.source.to_string(),
                r.name.clone(),
                r.disk.to_string(),
                r.size.to_string(),
                output::relative(r.accessed, now),
                r.state.to_string(),
            ]
        })
        .collect();
    output::text_table(
        &["Source", "Name", "Disk", "Size", "Accessed", "State"],
        &cells,
    )
}

pub fn list(home: &Home, spec: &CommandSpec, p: &Parsed) -> Result<(), Failure> {
    let source = p.value("source");
    if let Some(s) = source.filter(|s| *s != "local" && *s != "oci") {
        return Err(
            UsageError::for_command(spec, format!("'{s}' is not a valid <source>"), None).into(),
        );
    }
    p.check_leftovers(spec)?;
    let rows = list_rows(home, source);
    if p.flag("quiet") {
        for row in &rows {
            print(&row.name);
        }
        return Ok(());
    }
    if p.value("format") == Some("json") {
        let items: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "Source": r.source, "Name": r.name, "Disk": r.disk, "Size": r.size,
                    "Accessed": output::iso8601(r.accessed), "Running": r.running, "State": r.state,
                })
            })
            .collect();
        print(&output::apple_json(&Value::Array(items)));
    } else if rows.is_empty() {
        print("");
    } else {
        print(&list_text(&rows));
    }
    Ok(())
}

pub fn rename(home: &Home, spec: &CommandSpec, p: &Parsed) -> Result<(), Failure> {
    let name = p.positional("name").unwrap_or_default();
    let new_name = p.positional("new-name").unwrap_or_default();
    if new_name.contains('/') {
        return Err(UsageError::for_command(
            spec,
            "<new-name> should be a local name".into(),
            None,
        )
        .into());
    }
    p.check_leftovers(spec)?;
    if !home.vm_exists(name) {
        return Err(
            UsageError::root(format!("failed to rename a non-existent local VM: {name}")).into(),
        );
    }
    if home.vm_exists(new_name) {
        return Err(UsageError::root(format!(
            "failed to rename VM {name}, target VM {new_name} already exists, delete it first!"
        ))
        .into());
    }
    fs::rename(home.vm_dir(name), home.vm_dir(new_name)).map_err(io_failure)
}

pub fn delete(home: &Home, spec: &CommandSpec, p: &Parsed) -> Result<(), Failure> {
    p.check_leftovers(spec)?;
    for name in p.positionals("name") {
        match RemoteName::parse(name) {
            Some(remote) => {
                let dir = remote?
                    .cached_dir(home)
                    .ok_or_else(|| Failure::vm_does_not_exist(name))?;
                let _ = fs::remove_dir_all(&dir);
                remove_dangling_links(&home.oci_dir());
            }
            None => {
                let dir = home.vm_dir(name);
                if !dir.join("config.json").is_file() {
                    return Err(Failure::vm_does_not_exist(name));
                }
                let vm = VmDir {
                    name: name.clone(),
                    path: dir.clone(),
                };
                if vm.is_running() {
                    return Err(Failure::vm_is_running(name));
                }
                fs::remove_dir_all(&dir).map_err(io_failure)?;
            }
        }
    }
    Ok(())
}

fn remove_dangling_links(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path: PathBuf = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_symlink()) {
            if !path.exists() {
                let _ = fs::remove_file(&path);
            }
        } else if path.is_dir() {
            remove_dangling_links(&path);
        }
    }
}

pub fn pull(home: &Home, spec: &CommandSpec, p: &Parsed) -> Result<(), Failure> {
    p.check_leftovers(spec)?;
    let name = p.positional("remote-name").unwrap_or_default();
    if home.vm_exists(name) {
        print(&format!(
            "\"{name}\" is a local image, nothing to pull here!"
        ));
        return Ok(());
    }
    let remote = match RemoteName::parse(name) {
        Some(r) => r?,
        None => {
            return Err(Failure::generic(format!(
                "failed to parse remote name: {name}"
            )))
        }
    };
    images::pull(home, &remote, true).map(|_| ())
}

/// `tart fqn NAME` (tart's `Commands/FQN.swift`): a remote name gets its digest; anything
/// that does not parse as one (a local VM's name, whether it exists or not) is printed as is.
pub fn fqn(home: &Home, spec: &CommandSpec, p: &Parsed) -> Result<(), Failure> {
    p.check_leftovers(spec)?;
    let name = p.positional("name").unwrap_or_default();
    match RemoteName::parse(name) {
        Some(Ok(remote)) => print(&remote.fully_qualified(home)?),
        Some(Err(_)) | None => print(name),
    }
    Ok(())
}
