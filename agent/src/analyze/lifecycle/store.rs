//! The lifecycle's files under `<data_dir>/models/`:
//!
//! ```text
//! lifecycle.json             the state machine (active, previous, phase, decided digests)
//! packages/<digest>.ewpkg    each package the state names, as received (signed)
//! ```
//!
//! A package file is written (atomically) before the state that names it, and files no state
//! names are removed after the state is written: a crash at any point leaves a state whose
//! packages are all whole on disk. Packages are verified again when read at start, so a file
//! damaged on the card, or signed by a key no longer trusted, is caught there.

use std::path::{Path, PathBuf};

use super::machine::Lifecycle;
use crate::analyze::persist::write_atomically;

/// The state file's name.
pub const STATE_FILE: &str = "lifecycle.json";

/// The lifecycle's folder.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store in `dir` (created when first written).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn package_path(&self, digest: &str) -> PathBuf {
        self.dir
            .join("packages")
            .join(format!("{digest}.{}", super::package::PACKAGE_EXTENSION))
    }

    /// The stored state; `Ok(None)` when there is none. A damaged state file is moved aside
    /// (`lifecycle.json.bad`) and reported as the error: the caller starts afresh.
    pub fn load(&self) -> Result<Option<Lifecycle>, String> {
        let path = self.dir.join(STATE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            let _ = std::fs::rename(&path, path.with_extension("json.bad"));
            format!("{}: {e} (moved aside to {STATE_FILE}.bad)", path.display())
        })
    }

    /// Writes the state atomically, then removes package files it no longer names.
    pub fn save(&self, state: &Lifecycle) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(state).expect("the lifecycle serialises");
        write_atomically(&self.dir.join(STATE_FILE), &bytes)?;
        let mut keep: Vec<&str> = Vec::new();
        keep.extend(state.active.digest.as_deref());
        keep.extend(state.previous.as_ref().and_then(|p| p.digest.as_deref()));
        if let super::machine::Phase::Shadow { candidate, .. } = &state.phase {
            keep.extend(candidate.digest.as_deref());
        }
        if let Ok(entries) = std::fs::read_dir(self.dir.join("packages")) {
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                let stem = name.split('.').next().unwrap_or_default();
                if !keep.contains(&stem) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }

    /// Stores a package's bytes (atomically) under its digest.
    pub fn put(&self, digest: &str, bytes: &[u8]) -> std::io::Result<()> {
        write_atomically(&self.package_path(digest), bytes)
    }

    /// A stored package's bytes.
    pub fn get(&self, digest: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.package_path(digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::lifecycle::machine::{ModelRef, Rules};

    #[test]
    fn the_state_and_its_packages_are_kept_and_unnamed_packages_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("models"));
        assert_eq!(store.load().unwrap(), None);
        let m = |v: &str| ModelRef {
            version: v.into(),
            digest: Some(v.into()),
        };
        let mut l = Lifecycle::new(m("a"));
        store.put("a", b"package a").unwrap();
        store.put("b", b"package b").unwrap();
        store.put("old", b"package old").unwrap();
        l.accepted(m("b"), 0, &Rules::default());
        store.save(&l).unwrap();
        assert_eq!(store.load().unwrap(), Some(l));
        assert_eq!(store.get("b").unwrap(), b"package b");
        assert!(store.get("old").is_err());
    }

    #[test]
    fn a_damaged_state_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_path_buf());
        std::fs::write(dir.path().join(STATE_FILE), b"{half").unwrap();
        assert!(store.load().is_err());
        assert!(dir.path().join("lifecycle.json.bad").exists());
        assert_eq!(store.load().unwrap(), None);
    }
}
