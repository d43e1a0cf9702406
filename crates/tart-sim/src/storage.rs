//! tart's storage under `TART_HOME` (reference section 4): VM directories, `config.json`,
//! the fcntl write lock that means "running", the global flock, and sparse copies.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::failure::Failure;

/// The storage root and the simulator's own files inside it.
#[derive(Clone, Debug)]
pub struct Home {
    pub root: PathBuf,
}

impl Home {
    /// Resolves `TART_HOME` (default `~/.tart`) and creates `cache/` and `tmp/` as tart does.
    pub fn open() -> Result<Home, Failure> {
        let root = match std::env::var_os("TART_HOME") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => {
                let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
                PathBuf::from(home).join(".tart")
            }
        };
        for sub in ["cache", "tmp", "vms"] {
            let path = root.join(sub);
            if let Err(e) = fs::create_dir_all(&path) {
                return Err(Failure::plain(
                    1,
                    format!(
                        "TART_HOME is invalid: {} does not exist, yet we can't create it: {e}",
                        root.display()
                    ),
                ));
            }
        }
        Ok(Home { root })
    }

    pub fn vms_dir(&self) -> PathBuf {
        self.root.join("vms")
    }

    pub fn vm_dir(&self, name: &str) -> PathBuf {
        self.vms_dir().join(name)
    }

    pub fn oci_dir(&self) -> PathBuf {
        self.root.join("cache").join("OCIs")
    }

    /// The simulator's private area: leases, faults, logs of guests.
    pub fn sim_dir(&self) -> PathBuf {
        self.root.join("sim")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A VM exists ("is initialized") only when its three files do.
    pub fn vm_exists(&self, name: &str) -> bool {
        is_initialized(&self.vm_dir(name))
    }

    /// Opens a local VM or fails with tart's `VMDoesNotExist` (exit 2).
    pub fn open_vm(&self, name: &str) -> Result<VmDir, Failure> {
        let dir = self.vm_dir(name);
        if !dir.is_dir() {
            return Err(Failure::vm_does_not_exist(name));
        }
        if !is_initialized(&dir) {
            return Err(Failure::plain(
                1,
                "VM is missing some of its files (config.json, disk.img or nvram.bin)".into(),
            ));
        }
        let vm = VmDir {
            name: name.to_string(),
            path: dir,
        };
        vm.touch_accessed();
        Ok(vm)
    }

    /// Local VM names in byte order.
    pub fn local_vm_names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.vms_dir())
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter(|e| is_initialized(&e.path()))
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// tart's global lock: `flock(LOCK_EX)` on the `TART_HOME` directory, held while the
    /// returned file lives.
    pub fn global_lock(&self) -> io::Result<File> {
        let dir = File::open(&self.root)?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(dir)
    }
}

pub fn is_initialized(dir: &Path) -> bool {
    ["config.json", "disk.img", "nvram.bin"]
        .iter()
        .all(|f| dir.join(f).is_file())
}

/// One local VM directory.
#[derive(Clone, Debug)]
pub struct VmDir {
    pub name: String,
    pub path: PathBuf,
}

impl VmDir {
    pub fn config_path(&self) -> PathBuf {
        self.path.join("config.json")
    }

    pub fn disk_path(&self) -> PathBuf {
        self.path.join("disk.img")
    }

    /// The guest's persistent root layers (the simulator's stand-in for the disk's contents).
    pub fn guest_dir(&self) -> PathBuf {
        self.path.join("guest")
    }

    pub fn read_config(&self) -> Result<VmConfig, Failure> {
        VmConfig::read(&self.config_path())
    }

    /// tart bumps the directory's access time whenever it opens a VM.
    pub fn touch_accessed(&self) {
        let Ok(c_path) = std::ffi::CString::new(self.path.as_os_str().as_encoded_bytes()) else {
            return;
        };
        let times = [
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_NOW,
            },
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            },
        ];
        // SAFETY: valid C string and a two-element timespec array.
        unsafe { libc::utimensat(libc::AT_FDCWD, c_path.as_ptr(), times.as_ptr(), 0) };
    }

    pub fn accessed(&self) -> SystemTime {
        fs::metadata(&self.path)
            .and_then(|m| m.accessed())
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// The pid of the `tart run` holding the write lock on `config.json`, if any (`F_GETLK`).
    pub fn running_pid(&self) -> Option<i32> {
        let file = File::open(self.config_path()).ok()?;
        let mut lock = whole_file_lock(libc::F_WRLCK);
        // SAFETY: F_GETLK with a valid flock struct.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut lock) } != 0 {
            return None;
        }
        (lock.l_type != libc::F_UNLCK as i16 && lock.l_pid != 0).then_some(lock.l_pid)
    }

    pub fn is_running(&self) -> bool {
        self.running_pid().is_some()
    }

    /// Takes the "running" lock (`F_SETLK`, write). The lock lives as long as the file.
    pub fn take_run_lock(&self) -> Option<File> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.config_path())
            .ok()?;
        let lock = whole_file_lock(libc::F_WRLCK);
        // SAFETY: F_SETLK with a valid flock struct.
        (unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) } == 0).then_some(file)
    }

    /// `(apparent, allocated)` bytes of the three VM files, as tart sums them.
    pub fn sizes(&self) -> (u64, u64) {
        use std::os::unix::fs::MetadataExt;
        ["config.json", "disk.img", "nvram.bin"]
            .iter()
            .filter_map(|f| fs::metadata(self.path.join(f)).ok())
            .fold((0, 0), |(a, s), m| (a + m.len(), s + m.blocks() * 512))
    }

    pub fn state(&self) -> &'static str {
        if self.is_running() {
            "running"
        } else if self.path.join("state.vzvmsave").exists() {
            "suspended"
        } else {
            "stopped"
        }
    }
}

fn whole_file_lock(kind: libc::c_int) -> libc::flock {
    // SAFETY: flock is plain data; all-zero is a valid value.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind as i16;
    lock.l_whence = libc::SEEK_SET as i16;
    lock
}

/// `config.json`, kept as a JSON object so fields the simulator does not know survive.
#[derive(Clone, Debug)]
pub struct VmConfig {
    pub fields: Map<String, Value>,
}

impl VmConfig {
    pub fn read(path: &Path) -> Result<VmConfig, Failure> {
        let text = fs::read_to_string(path)
            .map_err(|e| Failure::generic(format!("failed to read {}: {e}", path.display())))?;
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(fields)) => Ok(VmConfig { fields }),
            _ => Err(Failure::generic(format!(
                "VMConfigurationError: failed to parse {}",
                path.display()
            ))),
        }
    }

    /// A Linux VM's config as `tart create --linux` makes it.
    pub fn new_linux(cpu: u64, memory_mib: u64, mac: &str) -> VmConfig {
        let mut fields = Map::new();
        fields.insert("version".into(), 1.into());
        fields.insert("os".into(), "linux".into());
        fields.insert("arch".into(), "arm64".into());
        fields.insert("cpuCountMin".into(), cpu.into());
        fields.insert("cpuCount".into(), cpu.into());
        fields.insert("memorySizeMin".into(), (memory_mib << 20).into());
        fields.insert("memorySize".into(), (memory_mib << 20).into());
        fields.insert("macAddress".into(), mac.into());
        let mut display = Map::new();
        display.insert("width".into(), 1024.into());
        display.insert("height".into(), 768.into());
        fields.insert("display".into(), Value::Object(display));
        fields.insert("diskFormat".into(), "raw".into());
        VmConfig { fields }
    }

    pub fn mac(&self) -> String {
        self.str_field("macAddress")
    }

    pub fn set_mac(&mut self, mac: &str) {
        self.fields.insert("macAddress".into(), mac.into());
    }

    pub fn cpu(&self) -> u64 {
        self.u64_field("cpuCount")
    }

    pub fn memory_mib(&self) -> u64 {
        self.u64_field("memorySize") >> 20
    }

    pub fn str_field(&self, key: &str) -> String {
        self.fields
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    pub fn u64_field(&self, key: &str) -> u64 {
        self.fields.get(key).and_then(Value::as_u64).unwrap_or(0)
    }

    /// Writes in Apple's pretty JSON with a random key order, as tart's `save()` does.
    pub fn write(&self, path: &Path) -> Result<(), Failure> {
        let text = crate::output::apple_json(&Value::Object(self.fields.clone()));
        write_file(path, text.as_bytes())
            .map_err(|e| Failure::generic(format!("failed to write {}: {e}", path.display())))
    }
}

/// Overwrites a file in place. tart writes `config.json` in place too, which is what keeps
/// a running VM's fcntl lock on the same inode.
pub fn write_file(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Creates a sparse file of `len` bytes.
pub fn create_sparse(path: &Path, len: u64) -> io::Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)?;
    f.set_len(len)
}

/// Copies a file as tart's `FileManager.copyItem` does on APFS (`clonefile`): a
/// copy-on-write reflink (`FICLONE`) where the filesystem has them (btrfs, XFS, bcachefs),
/// else a copy that keeps the holes.
pub fn clone_file(from: &Path, to: &Path) -> io::Result<()> {
    let src = File::open(from)?;
    let dst = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(to)?;
    // SAFETY: FICLONE takes the source descriptor; both descriptors are open.
    let cloned = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) };
    if cloned == 0 {
        return dst.sync_all();
    }
    drop(dst);
    copy_sparse(from, to)
}

/// Copies a file keeping its holes (SEEK_DATA/SEEK_HOLE), so a 20 GB empty disk costs nothing.
pub fn copy_sparse(from: &Path, to: &Path) -> io::Result<()> {
    let mut src = File::open(from)?;
    let len = src.metadata()?.len();
    let mut dst = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(to)?;
    dst.set_len(len)?;
    let fd = src.as_raw_fd();
    let mut pos: i64 = 0;
    let mut buf = vec![0u8; 1 << 20];
    while (pos as u64) < len {
        // SAFETY: lseek on an open descriptor.
        let data = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if data < 0 {
            break; // only a hole remains
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        let end = if hole < 0 { len as i64 } else { hole };
        src.seek(SeekFrom::Start(data as u64))?;
        dst.seek(SeekFrom::Start(data as u64))?;
        let mut remaining = (end - data) as usize;
        while remaining > 0 {
            let n = src.read(&mut buf[..remaining.min(1 << 20)])?;
            if n == 0 {
                break;
            }
            dst.write_all(&buf[..n])?;
            remaining -= n;
        }
        pos = end;
    }
    dst.sync_all()
}

/// A random locally administered unicast MAC, lower case and zero padded.
pub fn random_mac() -> String {
    let mut b = random_bytes::<6>();
    b[0] = (b[0] & 0xfc) | 0x02;
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    if let Ok(mut f) = File::open("/dev/urandom") {
        let _ = f.read_exact(&mut buf);
    }
    buf
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_has_the_same_bytes_and_holes_with_or_without_reflinks() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("disk.img"), dir.path().join("copy.img"));
        create_sparse(&from, 64 << 20).unwrap();
        let mut f = OpenOptions::new().write(true).open(&from).unwrap();
        f.seek(SeekFrom::Start(32 << 20)).unwrap();
        f.write_all(b"guest data").unwrap();
        drop(f);
        clone_file(&from, &to).unwrap();
        assert_eq!(std::fs::read(&from).unwrap(), std::fs::read(&to).unwrap());
        use std::os::unix::fs::MetadataExt;
        // Holes kept (a reflink shares the blocks; a sparse copy allocates only the data).
        assert!(std::fs::metadata(&to).unwrap().blocks() * 512 < 8 << 20);
    }
}
