//! Master keys: 256-bit AES keys with ids, one of them primary.
//!
//! On disk a key ring is a directory with one file per key — the file name is
//! the key id, the content the key in base64 (standard alphabet) — plus a file
//! `primary` naming the key that seals new records. That is exactly the shape
//! of a mounted Kubernetes Secret (`kubectl create secret generic … \
//! --from-file=k1 --from-literal=primary=k1`), so the same loader serves a
//! directory an operator made by hand and a Secret volume. The loader skips
//! the dot-entries Kubernetes adds (`..data`, `..2024_…`) and follows the
//! symlinks it makes. A single key file is also accepted: its name is the id
//! and it is the primary.
//!
//! Errors name the file and the rule it broke; key material never appears in
//! an error, a log line or `Debug` output.

use std::{
    collections::BTreeMap,
    fmt, fs,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use aes_gcm::aead::{OsRng, rand_core::RngCore};
use base64::{Engine, engine::general_purpose::STANDARD};
use yunshu_core::{Error, Result};
use zeroize::Zeroizing;

/// The length of a master key in bytes (AES-256).
pub const KEY_LEN: usize = 32;

/// The file of a key-ring directory that names the primary key.
pub const PRIMARY_FILE: &str = "primary";

/// The longest key id accepted; ids are stored in every record.
const MAX_ID_LEN: usize = 64;

/// One master key. Its bytes are zeroed when it is dropped and never shown.
pub(crate) struct MasterKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl MasterKey {
    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }
}

/// A set of master keys by id, with the primary one that seals new records.
/// Older keys stay in the ring so records sealed under them can still be
/// opened until [`crate::Vault::rewrap_all`] has moved them to the primary.
pub struct KeyRing {
    keys: BTreeMap<String, MasterKey>,
    primary: String,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .field("primary", &self.primary)
            .finish()
    }
}

impl KeyRing {
    /// Builds a ring from raw keys; `primary` must be one of their ids. Each
    /// key must be exactly [`KEY_LEN`] bytes.
    pub fn from_keys(
        keys: impl IntoIterator<Item = (String, Vec<u8>)>,
        primary: impl Into<String>,
    ) -> Result<Self> {
        let mut ring = BTreeMap::new();
        for (id, raw) in keys {
            let raw = Zeroizing::new(raw);
            check_id(&id).map_err(|rule| Error::invalid(format!("master key id `{id}`"), rule))?;
            let key = key_from_raw(&raw).map_err(|len| {
                Error::invalid(
                    format!("master key `{id}`"),
                    format!("must be exactly {KEY_LEN} bytes (256 bits), got {len}"),
                )
            })?;
            ring.insert(id, key);
        }
        Self::assemble(ring, primary.into(), "the key ring")
    }

    /// Loads a ring from `path`: a key-ring directory (a mounted Secret) or a
    /// single key file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let meta = fs::metadata(path).map_err(|e| io_error("read master keys at", path, e))?;
        if meta.is_dir() {
            Self::from_dir(path)
        } else {
            Self::from_file(path)
        }
    }

    /// Loads a key-ring directory: one file per key plus `primary`. With a
    /// single key the `primary` file may be left out.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let entries =
            fs::read_dir(dir).map_err(|e| io_error("list master key directory", dir, e))?;
        let mut keys = BTreeMap::new();
        let mut primary = None;
        for entry in entries {
            let entry = entry.map_err(|e| io_error("list master key directory", dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue; // Kubernetes' `..data` and timestamped directories
            }
            let path = entry.path();
            let meta =
                fs::metadata(&path).map_err(|e| io_error("read master key file", &path, e))?;
            if !meta.is_file() {
                continue;
            }
            if name == PRIMARY_FILE {
                let text = fs::read_to_string(&path)
                    .map_err(|e| io_error("read the primary key file", &path, e))?;
                primary = Some(text.trim().to_owned());
                continue;
            }
            keys.insert(name, read_key_file(&path, &meta)?);
        }
        let primary = match primary {
            Some(p) => p,
            None if keys.len() == 1 => keys.keys().next().cloned().unwrap_or_default(),
            None => {
                return Err(Error::invalid(
                    format!("master key directory {}", dir.display()),
                    format!(
                        "holds {} keys but no `{PRIMARY_FILE}` file naming the active one",
                        keys.len()
                    ),
                ));
            }
        };
        Self::assemble(
            keys,
            primary,
            &format!("master key directory {}", dir.display()),
        )
    }

    /// Loads a single key file; its file name is the key id.
    pub fn from_file(file: impl AsRef<Path>) -> Result<Self> {
        let file = file.as_ref();
        let meta = fs::metadata(file).map_err(|e| io_error("read master key file", file, e))?;
        let id = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let key = read_key_file(file, &meta)?;
        Self::assemble(
            BTreeMap::from([(id.clone(), key)]),
            id,
            &format!("master key file {}", file.display()),
        )
    }

    /// A ring of one fresh random key that lives only in this process, for a
    /// store that forgets everything on exit anyway (`--store memory`).
    pub fn generate() -> Self {
        let id = fresh_id();
        Self {
            keys: BTreeMap::from([(id.clone(), MasterKey { bytes: fresh_key() })]),
            primary: id,
        }
    }

    /// Creates a key-ring directory holding one fresh random key, made
    /// primary (directory mode 0700, files 0600), and loads it. Refuses a
    /// directory that already holds a ring. For tests and the quick start;
    /// production keys come from a Secret or a file an operator manages.
    ///
    /// The ring is built in a hidden sibling directory and renamed into
    /// place, so no reader ever sees it half-written, and processes racing to
    /// create the same directory all load the one ring that won.
    pub fn generate_dir(path: impl AsRef<Path>) -> Result<Self> {
        let dir = path.as_ref();
        if dir.join(PRIMARY_FILE).exists() {
            return Err(Error::AlreadyExists {
                what: format!("a key ring in {}", dir.display()),
            });
        }
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        fs::create_dir_all(parent)
            .map_err(|e| io_error("create the parent of master key directory", dir, e))?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Unique among this process's threads and other processes alike.
        static STAGED: AtomicU64 = AtomicU64::new(0);
        let staging = parent.join(format!(
            ".{name}.{}-{}-{}.tmp",
            std::process::id(),
            STAGED.fetch_add(1, Ordering::Relaxed),
            fresh_id()
        ));
        let built = fs::create_dir(&staging)
            .and_then(|()| fs::set_permissions(&staging, fs::Permissions::from_mode(0o700)))
            .map_err(|e| io_error("create master key directory", &staging, e))
            .and_then(|()| Self::add_key_to_dir(&staging))
            .and_then(|_| {
                fs::rename(&staging, dir)
                    .map_err(|e| io_error("move the new master key directory to", dir, e))
            });
        match built {
            Ok(()) => sync_dir(parent)?,
            // Another process created the ring first: use theirs.
            Err(_) if dir.join(PRIMARY_FILE).exists() => {
                let _ = fs::remove_dir_all(&staging);
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&staging);
                return Err(e);
            }
        }
        Self::from_dir(dir)
    }

    /// Adds a fresh random key to a key-ring directory, makes it primary and
    /// loads the result. The older keys stay, so existing records still open;
    /// run [`crate::Vault::rewrap_all`] before removing them.
    pub fn rotate_dir(path: impl AsRef<Path>) -> Result<Self> {
        let dir = path.as_ref();
        Self::add_key_to_dir(dir)?;
        Self::from_dir(dir)
    }

    /// The id of the primary key.
    pub fn primary_id(&self) -> &str {
        &self.primary
    }

    /// Every key id, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Whether the ring holds the key `id`.
    pub fn contains(&self, id: &str) -> bool {
        self.keys.contains_key(id)
    }

    pub(crate) fn primary(&self) -> (&str, &MasterKey) {
        let key = self
            .keys
            .get(&self.primary)
            .expect("assemble() checked that the primary key is in the ring");
        (&self.primary, key)
    }

    pub(crate) fn get(&self, id: &str) -> Option<&MasterKey> {
        self.keys.get(id)
    }

    fn assemble(keys: BTreeMap<String, MasterKey>, primary: String, what: &str) -> Result<Self> {
        if keys.is_empty() {
            return Err(Error::invalid(what, "holds no master key"));
        }
        for id in keys.keys() {
            check_id(id).map_err(|rule| Error::invalid(format!("{what}: key id `{id}`"), rule))?;
        }
        if !keys.contains_key(&primary) {
            return Err(Error::invalid(
                format!("{what}: {PRIMARY_FILE}"),
                format!("names key `{primary}`, which is not in the ring"),
            ));
        }
        Ok(Self { keys, primary })
    }

    fn add_key_to_dir(dir: &Path) -> Result<String> {
        let id = fresh_id();
        let encoded = Zeroizing::new(STANDARD.encode(fresh_key().as_ref()));
        write_private(&dir.join(&id), encoded.as_bytes(), true)?;
        let tmp = dir.join(format!(".{PRIMARY_FILE}.{id}.tmp"));
        write_private(&tmp, id.as_bytes(), false)?;
        fs::rename(&tmp, dir.join(PRIMARY_FILE))
            .map_err(|e| io_error("write the primary key file in", dir, e))?;
        sync_dir(dir)?;
        tracing::info!(dir = %dir.display(), key_id = %id, "master key generated and made primary");
        Ok(id)
    }
}

/// A fresh random key.
fn fresh_key() -> Zeroizing<[u8; KEY_LEN]> {
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    OsRng.fill_bytes(bytes.as_mut());
    bytes
}

/// A fresh key id: `k<UTC time>-<4 random hex digits>`.
fn fresh_id() -> String {
    let mut suffix = [0u8; 2];
    OsRng.fill_bytes(&mut suffix);
    format!(
        "k{}-{:02x}{:02x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        suffix[0],
        suffix[1]
    )
}

/// Makes the directory's new entries durable.
fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("sync master key directory", dir, e))
}

/// Why a key id is not acceptable, if it is not.
fn check_id(id: &str) -> std::result::Result<(), &'static str> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err("must be 1 to 64 characters long");
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("may only contain letters, digits, `-`, `_` and `.`");
    }
    Ok(())
}

/// The key in `raw`, or the wrong length it has.
fn key_from_raw(raw: &[u8]) -> std::result::Result<MasterKey, usize> {
    if raw.len() != KEY_LEN {
        return Err(raw.len());
    }
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    bytes.copy_from_slice(raw);
    Ok(MasterKey { bytes })
}

fn read_key_file(path: &Path, meta: &fs::Metadata) -> Result<MasterKey> {
    let field = || format!("master key file {}", path.display());
    let text =
        Zeroizing::new(fs::read(path).map_err(|e| io_error("read master key file", path, e))?);
    let trimmed = text.trim_ascii();
    let raw = Zeroizing::new(STANDARD.decode(trimmed).map_err(|_| {
        Error::invalid(
            field(),
            format!("must hold the key in base64 (standard alphabet) of exactly {KEY_LEN} bytes; the content is not valid base64"),
        )
    })?);
    let key = key_from_raw(&raw).map_err(|len| {
        Error::invalid(
            field(),
            format!("must hold the key in base64 of exactly {KEY_LEN} bytes (256 bits); it decodes to {len} bytes"),
        )
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            file = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "master key file is readable by group or others"
        );
    }
    Ok(key)
}

fn write_private(path: &Path, content: &[u8], create_new: bool) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).mode(0o600);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    let mut file = options
        .open(path)
        .map_err(|e| io_error("create master key file", path, e))?;
    file.write_all(content)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("write master key file", path, e))
}

fn io_error(action: &str, path: &Path, source: std::io::Error) -> Error {
    Error::Internal {
        message: format!("failed to {action} {}", PathBuf::from(path).display()),
        source: Some(Box::new(source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("tempdir")
    }

    #[test]
    fn generated_dir_loads_with_private_files() {
        let d = dir();
        let path = d.path().join("ring");
        let ring = KeyRing::generate_dir(&path).expect("generate");
        let id = ring.primary_id().to_owned();
        let mode = fs::metadata(path.join(&id))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = KeyRing::load(&path).expect("load");
        assert_eq!(again.primary_id(), id);
        assert!(
            KeyRing::generate_dir(&path).is_err(),
            "a second generate must refuse"
        );
        let rotated = KeyRing::rotate_dir(&path).expect("rotate");
        assert_ne!(rotated.primary_id(), id);
        assert!(rotated.contains(&id));
    }

    #[test]
    fn racing_generators_all_load_the_one_ring_that_won() {
        let d = dir();
        let path = d.path().join("data").join("master-keys");
        let primaries: Vec<String> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..8)
                .map(|_| s.spawn(|| KeyRing::generate_dir(&path)))
                .collect();
            workers
                .into_iter()
                .filter_map(|w| match w.join().expect("thread") {
                    Ok(ring) => Some(ring.primary_id().to_owned()),
                    // Started after the winner had finished: refused, as documented.
                    Err(Error::AlreadyExists { .. }) => None,
                    Err(e) => panic!("a racing generator failed: {e}"),
                })
                .collect()
        });
        let ring = KeyRing::load(&path).expect("load");
        assert!(!primaries.is_empty());
        assert!(
            primaries.iter().all(|p| p == ring.primary_id()),
            "{primaries:?}"
        );
        assert_eq!(ring.ids().count(), 1, "exactly one key was kept");
        let leftovers: Vec<_> = fs::read_dir(d.path().join("data"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(
            leftovers,
            ["master-keys"],
            "no staging directory is left behind"
        );
    }

    #[test]
    fn a_generated_ring_in_memory_seals_with_its_one_key() {
        let ring = KeyRing::generate();
        assert_eq!(ring.ids().collect::<Vec<_>>(), [ring.primary_id()]);
        check_id(ring.primary_id()).expect("a valid id");
    }

    #[test]
    fn kubernetes_secret_layout_loads() {
        let d = dir();
        let data = d.path().join("..2026_01_01_00_00_00.000");
        fs::create_dir(&data).expect("mkdir");
        fs::write(data.join("old"), STANDARD.encode([1u8; 32])).expect("write");
        fs::write(
            data.join("new"),
            format!("{}\n", STANDARD.encode([2u8; 32])),
        )
        .expect("write");
        fs::write(data.join("primary"), "new\n").expect("write");
        std::os::unix::fs::symlink(&data, d.path().join("..data")).expect("link");
        for f in ["old", "new", "primary"] {
            std::os::unix::fs::symlink(format!("..data/{f}"), d.path().join(f)).expect("link");
        }
        let ring = KeyRing::load(d.path()).expect("load");
        assert_eq!(ring.primary_id(), "new");
        assert_eq!(ring.ids().collect::<Vec<_>>(), ["new", "old"]);
    }

    #[test]
    fn single_key_file_is_its_own_primary() {
        let d = dir();
        let file = d.path().join("master");
        fs::write(&file, STANDARD.encode([7u8; 32])).expect("write");
        let ring = KeyRing::load(&file).expect("load");
        assert_eq!(ring.primary_id(), "master");
    }

    #[test]
    fn malformed_keys_name_file_and_rule_without_content() {
        let d = dir();
        let short = d.path().join("short");
        let secretish = STANDARD.encode([9u8; 16]);
        fs::write(&short, &secretish).expect("write");
        let e = KeyRing::from_file(&short).expect_err("16 bytes");
        let msg = e.to_string();
        assert!(
            msg.contains("short") && msg.contains("exactly 32 bytes") && msg.contains("16"),
            "{msg}"
        );
        assert!(!msg.contains(&secretish));

        let garbage = d.path().join("garbage");
        fs::write(&garbage, "not*base64!").expect("write");
        let msg = KeyRing::from_file(&garbage)
            .expect_err("garbage")
            .to_string();
        assert!(
            msg.contains("garbage") && msg.contains("not valid base64"),
            "{msg}"
        );
        assert!(!msg.contains("not*base64!"));
    }

    #[test]
    fn missing_or_unknown_primary_is_refused() {
        let d = dir();
        fs::write(d.path().join("a"), STANDARD.encode([1u8; 32])).expect("write");
        fs::write(d.path().join("b"), STANDARD.encode([2u8; 32])).expect("write");
        let msg = KeyRing::from_dir(d.path())
            .expect_err("no primary")
            .to_string();
        assert!(msg.contains("no `primary` file"), "{msg}");
        fs::write(d.path().join("primary"), "c").expect("write");
        let msg = KeyRing::from_dir(d.path())
            .expect_err("unknown primary")
            .to_string();
        assert!(msg.contains("names key `c`"), "{msg}");
    }

    #[test]
    fn debug_shows_ids_only() {
        let ring = KeyRing::from_keys([("k1".to_owned(), vec![0xAB; 32])], "k1").expect("ring");
        let dbg = format!("{ring:?}");
        assert!(
            dbg.contains("k1") && !dbg.contains("171") && !dbg.contains("AB"),
            "{dbg}"
        );
    }
}
