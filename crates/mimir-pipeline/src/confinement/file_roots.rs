//! The directories `file.read` and `file.write` may use, and how a step's
//! path is resolved inside them without escaping.

use super::ConfinementError;
use crate::ActionError;
use std::fs::File;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

/// The directories file steps work in: absolute, with `.` and `..` applied.
///
/// Every method here touches the file system and blocks: call them from
/// `tokio::task::spawn_blocking`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRoots {
    roots: Vec<PathBuf>,
}

impl FileRoots {
    /// The roots, made absolute against the current directory. They need not
    /// exist yet: a root is looked up on each use.
    pub fn new(roots: &[PathBuf]) -> Result<FileRoots, ConfinementError> {
        let mut absolute = Vec::with_capacity(roots.len());
        for (index, root) in roots.iter().enumerate() {
            let path = std::path::absolute(root).map_err(|e| ConfinementError::FileRoot {
                index,
                path: root.clone(),
                reason: e.to_string(),
            })?;
            absolute.push(normalize(&path));
        }
        Ok(FileRoots { roots: absolute })
    }

    /// The roots, absolute, in order.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Opens `path` for reading, or refuses it when it resolves outside the
    /// roots. A final symlink swapped in after the check is not followed, and
    /// on Linux the opened file's real location is checked once more.
    pub fn open_read(&self, path: &str) -> Result<File, ActionError> {
        let roots = self.real_roots();
        let lexical = self.lexical(path, &roots)?;
        let real = std::fs::canonicalize(&lexical).map_err(|e| io("read", path, e))?;
        self.require_inside(path, &real, &roots)?;
        let file = open_no_follow(&real).map_err(|e| io("read", path, e))?;
        self.verify_opened(path, &file)?;
        let metadata = file.metadata().map_err(|e| io("read", path, e))?;
        if !metadata.is_file() {
            return Err(io(
                "read",
                path,
                std::io::Error::new(ErrorKind::InvalidInput, "not a regular file"),
            ));
        }
        Ok(file)
    }

    /// Where a write to `path` goes: inside the roots, its missing parent
    /// directories created (only below a directory already checked to be
    /// inside). A final symlink is followed only when it leads inside the
    /// roots; the write itself replaces the directory entry (a rename), so it
    /// never writes through a symlink that appears later.
    pub fn write_target(&self, path: &str) -> Result<PathBuf, ActionError> {
        let roots = self.real_roots();
        let lexical = self.lexical(path, &roots)?;
        let is_root = self.roots.iter().chain(&roots).any(|root| *root == lexical);
        let (Some(parent), Some(name), false) = (lexical.parent(), lexical.file_name(), is_root)
        else {
            return Err(ActionError::parameter(
                "path",
                format!("\"{path}\" names a directory, not a file"),
            ));
        };
        // The deepest directory that exists is resolved and checked before
        // anything is created under it.
        let mut existing = parent.to_path_buf();
        let mut missing = Vec::new();
        loop {
            match std::fs::symlink_metadata(&existing) {
                Ok(_) => break,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    let Some(part) = existing.file_name() else {
                        return Err(io("create the directory of", path, e));
                    };
                    missing.push(part.to_os_string());
                    existing.pop();
                }
                Err(e) => return Err(io("create the directory of", path, e)),
            }
        }
        let real =
            std::fs::canonicalize(&existing).map_err(|e| io("create the directory of", path, e))?;
        self.require_inside(path, &real, &roots)?;
        let mut dir = real;
        for part in missing.iter().rev() {
            dir.push(part);
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io("create the directory of", path, e)),
            }
        }
        // Once more, in case a directory was replaced by a symlink meanwhile.
        let dir = std::fs::canonicalize(&dir).map_err(|e| io("write", path, e))?;
        self.require_inside(path, &dir, &roots)?;
        let target = dir.join(name);
        match std::fs::symlink_metadata(&target) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                if let Ok(real) = std::fs::canonicalize(&target) {
                    self.require_inside(path, &real, &roots)?;
                    return Ok(real);
                }
                // A dangling link is replaced, never written through; one
                // that points outside is refused all the same, for clarity.
                let to = std::fs::read_link(&target).map_err(|e| io("write", path, e))?;
                self.require_inside(path, &normalize(&dir.join(to)), &roots)?;
                Ok(target)
            }
            _ => Ok(target),
        }
    }

    /// Refuses a file that, once open, turns out to live outside the roots
    /// (a directory on its way was swapped for a symlink after the check).
    /// Linux only, through `/proc/self/fd`; elsewhere, and without `/proc`,
    /// the checks before opening are all there is.
    pub fn verify_opened(&self, path: &str, file: &File) -> Result<(), ActionError> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let link = format!("/proc/self/fd/{}", file.as_raw_fd());
            if let Ok(real) = std::fs::read_link(link) {
                self.require_inside(path, &real, &self.real_roots())?;
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (path, file);
        Ok(())
    }

    /// The roots that exist, symlinks resolved.
    fn real_roots(&self) -> Vec<PathBuf> {
        self.roots
            .iter()
            .filter_map(|root| std::fs::canonicalize(root).ok())
            .collect()
    }

    /// `path` against the first root, `.` and `..` applied, refused unless it
    /// is inside a root as written or as resolved.
    fn lexical(&self, path: &str, real_roots: &[PathBuf]) -> Result<PathBuf, ActionError> {
        let Some(first) = self.roots.first() else {
            return Err(self.outside(path, None));
        };
        let absolute = normalize(&first.join(path));
        let inside = self
            .roots
            .iter()
            .chain(real_roots)
            .any(|root| absolute.starts_with(root));
        if inside {
            Ok(absolute)
        } else {
            Err(self.outside(path, None))
        }
    }

    fn require_inside(
        &self,
        path: &str,
        real: &Path,
        real_roots: &[PathBuf],
    ) -> Result<(), ActionError> {
        if real_roots.iter().any(|root| real.starts_with(root)) {
            Ok(())
        } else {
            Err(self.outside(path, Some(real)))
        }
    }

    fn outside(&self, path: &str, resolved: Option<&Path>) -> ActionError {
        ActionError::OutsideRoots {
            path: path.to_string(),
            resolved: resolved.map(Path::to_path_buf),
            roots: self.roots.clone(),
        }
    }
}

fn io(op: &'static str, path: &str, source: std::io::Error) -> ActionError {
    ActionError::Io {
        op,
        path: PathBuf::from(path),
        source,
    }
}

/// Opens for reading without following a final symlink and without
/// blocking on a FIFO (which is then refused as not a regular file).
fn open_no_follow(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use rustix::fs::OFlags;
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32);
    }
    options.open(path)
}

/// `path` with `.` and `..` applied to the text alone; `..` above the root
/// stays at the root, as the kernel does.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Prefix(_) | Component::RootDir | Component::Normal(_) => out.push(component),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_are_applied_to_the_text() {
        assert_eq!(
            normalize(Path::new("/a/b/../c/./d")),
            PathBuf::from("/a/c/d")
        );
        assert_eq!(
            normalize(Path::new("/a/../../../etc")),
            PathBuf::from("/etc")
        );
    }

    #[test]
    fn without_roots_every_path_is_refused() {
        let roots = FileRoots::new(&[]).unwrap_or_else(|e| panic!("{e}"));
        let error = roots.open_read("x.json").expect_err("no roots");
        assert!(
            error.to_string().contains("no file roots are configured"),
            "{error}"
        );
    }
}
