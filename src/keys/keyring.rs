//! Master keys by version. They come from the environment or a key file, never from the database.
//!
//! Formats: `DEPLOYCLAW_MASTER_KEYS="1:<base64>,2:<base64>"`, or a key file (`DEPLOYCLAW_MASTER_KEY_FILE`,
//! default `<data_dir>/master.keys` in embedded mode) with one `<version>:<base64>` per line and `#` comments.
//! Each key is 32 random bytes. The highest version seals new records; older versions only open old ones
//! until `deployclaw vault rotate` has moved every record forward and the old line is deleted (retired).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use zeroize::Zeroizing;

/// Environment variable holding master keys inline.
pub const MASTER_KEYS_ENV: &str = "DEPLOYCLAW_MASTER_KEYS";
/// Environment variable naming the key file.
pub const MASTER_KEY_FILE_ENV: &str = "DEPLOYCLAW_MASTER_KEY_FILE";
/// The key file's name inside the data dir (embedded mode).
pub const DEFAULT_KEY_FILE: &str = "master.keys";
/// Master key length: AES-256.
pub const KEY_BYTES: usize = 32;

/// A master key version (1, 2, ...). Stored next to every envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyVersion(pub u32);

impl fmt::Display for KeyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// 32 bytes of key material: zeroized on drop, never printed, never serialised.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; KEY_BYTES]>);

impl MasterKey {
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, bytes.as_mut());
        Self(bytes)
    }

    pub(crate) fn expose(&self) -> &[u8; KEY_BYTES] {
        &self.0
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

/// The master keys this process holds. The highest version is current.
#[derive(Clone)]
pub struct Keyring {
    keys: BTreeMap<KeyVersion, MasterKey>,
    /// Where the keys came from, for logs (never the keys themselves).
    pub source: String,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("versions", &self.versions()).field("source", &self.source).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("no master key: set {MASTER_KEYS_ENV} or {MASTER_KEY_FILE_ENV} (production mode never generates one)")]
    Missing,
    #[error("{origin}: {message}")]
    Malformed { origin: String, message: String },
    #[error("key file {path}: permissions {mode:o} are too open; it must be readable by its owner only (chmod 600)")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("key file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl Keyring {
    /// Builds a keyring from versioned keys. At least one key is required.
    pub fn new(
        keys: impl IntoIterator<Item = (KeyVersion, MasterKey)>,
        source: impl Into<String>,
    ) -> Result<Self, KeyringError> {
        let keys: BTreeMap<_, _> = keys.into_iter().collect();
        let source = source.into();
        if keys.is_empty() {
            return Err(KeyringError::Malformed { origin: source, message: "no keys".into() });
        }
        Ok(Self { keys, source })
    }

    /// The version that seals new records.
    pub fn current(&self) -> (KeyVersion, &MasterKey) {
        let (v, k) = self.keys.iter().next_back().expect("a keyring is never empty");
        (*v, k)
    }

    pub fn get(&self, version: KeyVersion) -> Option<&MasterKey> {
        self.keys.get(&version)
    }

    pub fn versions(&self) -> Vec<KeyVersion> {
        self.keys.keys().copied().collect()
    }

    /// Parses `version:base64` entries separated by commas or newlines; `#` starts a comment.
    pub fn parse(text: &str, origin: &str) -> Result<Self, KeyringError> {
        let bad = |message: String| KeyringError::Malformed { origin: origin.to_string(), message };
        let mut keys = BTreeMap::new();
        for (i, entry) in text.split([',', '\n']).enumerate() {
            let entry = entry.split('#').next().unwrap_or_default().trim();
            if entry.is_empty() {
                continue;
            }
            let (version, key) =
                entry.split_once(':').ok_or_else(|| bad(format!("entry {} is not `version:base64key`", i + 1)))?;
            let version: u32 = version
                .trim()
                .parse()
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| bad(format!("entry {}: the version must be a positive integer", i + 1)))?;
            let bytes = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(key.trim())
                    .map_err(|_| bad(format!("key version {version} is not valid base64")))?,
            );
            let bytes: [u8; KEY_BYTES] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| bad(format!("key version {version} must be exactly {KEY_BYTES} bytes")))?;
            if keys.insert(KeyVersion(version), MasterKey::from_bytes(bytes)).is_some() {
                return Err(bad(format!("key version {version} appears twice")));
            }
        }
        Self::new(keys, origin)
    }

    /// Loads the keyring from `env` (the process environment in production code): the keys inline, or the key
    /// file it names, or `<data_dir>/master.keys`. With no key anywhere, `generate` (embedded mode) creates that
    /// file and says so; otherwise (production) it is an error.
    pub fn load(
        data_dir: &Path,
        generate: bool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Self, Option<PathBuf>), KeyringError> {
        if let Some(inline) = env(MASTER_KEYS_ENV).filter(|v| !v.trim().is_empty()) {
            return Ok((Self::parse(&inline, MASTER_KEYS_ENV)?, None));
        }
        let explicit = env(MASTER_KEY_FILE_ENV).map(PathBuf::from);
        let path = explicit.clone().unwrap_or_else(|| data_dir.join(DEFAULT_KEY_FILE));
        if path.exists() {
            return Ok((Self::read_file(&path)?, None));
        }
        if explicit.is_some() || !generate {
            return Err(match explicit {
                Some(path) => {
                    KeyringError::Io { path, source: std::io::Error::new(std::io::ErrorKind::NotFound, "not found") }
                }
                None => KeyringError::Missing,
            });
        }
        let keyring = Self::generate_file(&path)?;
        Ok((keyring, Some(path)))
    }

    /// Reads a key file, refusing one that group or others can read.
    pub fn read_file(path: &Path) -> Result<Self, KeyringError> {
        let io = |source| KeyringError::Io { path: path.to_path_buf(), source };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyringError::Permissions { path: path.to_path_buf(), mode });
            }
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
        Self::parse(&text, &path.display().to_string())
    }

    /// Creates a new key file with one fresh version-1 key, readable by its owner only.
    pub fn generate_file(path: &Path) -> Result<Self, KeyringError> {
        let io = |source| KeyringError::Io { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let key = MasterKey::generate();
        let line = Zeroizing::new(format!(
            "# DeployClaw master keys: version:base64. Back this file up; without it stored credentials are lost.\n\
             # Add a higher version to rotate (then run `deployclaw vault rotate`); delete a line to retire it.\n1:{}\n",
            base64::engine::general_purpose::STANDARD.encode(key.expose())
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io)?;
        file.write_all(line.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Self::new([(KeyVersion(1), key)], path.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(byte: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([byte; KEY_BYTES])
    }

    #[test]
    fn parses_versions_and_picks_the_highest_as_current() {
        let k = Keyring::parse(&format!("1:{}, 3:{} # newest\n2:{}", b64(1), b64(3), b64(2)), "test").unwrap();
        assert_eq!(k.versions(), [KeyVersion(1), KeyVersion(2), KeyVersion(3)]);
        assert_eq!(k.current().0, KeyVersion(3));
        assert_eq!(k.current().1.expose(), &[3u8; KEY_BYTES]);
    }

    #[test]
    fn malformed_keys_are_refused_with_a_reason_and_without_echoing_material() {
        for (text, reason) in [
            ("", "no keys"),
            ("abc", "version:base64key"),
            ("0:AAAA", "positive integer"),
            ("1:not-base64!", "not valid base64"),
            ("1:AAAA", "exactly 32 bytes"),
        ] {
            let err = Keyring::parse(text, "test").unwrap_err().to_string();
            assert!(err.contains(reason), "{text:?}: {err}");
        }
        let twice = format!("1:{},1:{}", b64(1), b64(2));
        assert!(Keyring::parse(&twice, "t").unwrap_err().to_string().contains("twice"));
        let err = Keyring::parse(&format!("1:{}x", b64(9)), "t").unwrap_err().to_string();
        assert!(!err.contains(&b64(9)));
    }

    #[test]
    fn debug_never_shows_key_material() {
        let k = Keyring::parse(&format!("1:{}", b64(0xAB)), "test").unwrap();
        let shown = format!("{k:?} {:?}", k.current().1);
        assert!(!shown.contains("171") && !shown.to_lowercase().contains("abab") && !shown.contains(&b64(0xAB)));
    }

    #[cfg(unix)]
    #[test]
    fn generated_key_files_are_owner_only_and_wider_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.keys");
        let generated = Keyring::generate_file(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let read = Keyring::read_file(&path).unwrap();
        assert_eq!(read.current().1.expose(), generated.current().1.expose());
        assert!(Keyring::generate_file(&path).is_err(), "never overwrites an existing key file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(Keyring::read_file(&path), Err(KeyringError::Permissions { mode: 0o644, .. })));
    }

    #[test]
    fn production_mode_without_a_key_is_an_error_and_embedded_mode_generates_one() {
        let dir = tempfile::tempdir().unwrap();
        let none = |_: &str| None;
        let (k, generated) = Keyring::load(dir.path(), true, &none).unwrap();
        assert_eq!(generated.as_deref(), Some(dir.path().join(DEFAULT_KEY_FILE).as_path()));
        assert_eq!(k.current().0, KeyVersion(1));
        let (again, generated) = Keyring::load(dir.path(), true, &none).unwrap();
        assert!(generated.is_none(), "second start reads the same file");
        assert_eq!(again.current().1.expose(), k.current().1.expose());

        // Production: never generated.
        let elsewhere = dir.path().join("elsewhere");
        assert!(matches!(Keyring::load(&elsewhere, false, &none), Err(KeyringError::Missing)));
        let inline = format!("7:{}", b64(7));
        let env = |name: &str| (name == MASTER_KEYS_ENV).then(|| inline.clone());
        assert_eq!(Keyring::load(&elsewhere, false, &env).unwrap().0.current().0, KeyVersion(7));
    }
}
