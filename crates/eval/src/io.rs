//! All file-system access of the evaluator goes through [`EvalIO`], so that
//! the glue can serve store paths from castore and import host paths into
//! the store. [`HostIO`] reads the host file system directly.

/// The type of a directory entry, as `builtins.readDir` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    Regular,
    Directory,
    Symlink,
    Unknown,
}

impl FileType {
    pub fn as_str(self) -> &'static str {
        match self {
            FileType::Regular => "regular",
            FileType::Directory => "directory",
            FileType::Symlink => "symlink",
            FileType::Unknown => "unknown",
        }
    }
}

/// File access for the evaluator. Errors are plain messages.
pub trait EvalIO {
    fn read_file(&self, path: &str) -> Result<Vec<u8>, String>;
    /// Directory entries (name, type), in any order.
    fn read_dir(&self, path: &str) -> Result<Vec<(String, FileType)>, String>;
    fn path_exists(&self, path: &str) -> bool;
    /// Type of the file at `path` without following a final symlink.
    fn file_type(&self, path: &str) -> Result<FileType, String>;
    /// Copy a host path into the store and return its store path
    /// (`/nix/store/<hash>-<name>`). Used for `"${./file}"`.
    fn import_path(&self, path: &str) -> Result<String, String>;
    /// Resolve symlinks in `path` (used before importing a file).
    fn canonicalize(&self, path: &str) -> Result<String, String> {
        Ok(path.to_string())
    }
    /// Where `<path>` resolves when no search path entry has it (C++ Nix
    /// serves `<nix/fetchurl.nix>` from memory this way).
    fn search_path_fallback(&self, _path: &str) -> Option<String> {
        None
    }
    /// The implementation as `Any`, so an embedder's builtins can reach
    /// their own state through `Eval::io` (the glue's store-backed IO).
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
}

/// [`EvalIO`] on the host file system. It cannot import paths into a store:
/// that needs the glue's store-backed implementation.
#[derive(Default)]
pub struct HostIO;

fn io_err(path: &str, e: std::io::Error) -> String {
    let what = match e.kind() {
        std::io::ErrorKind::NotFound => "No such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "Permission denied".to_string(),
        _ => e.to_string(),
    };
    format!("opening file '{path}': {what}")
}

impl EvalIO for HostIO {
    fn read_file(&self, path: &str) -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|e| io_err(path, e))
    }
    fn read_dir(&self, path: &str) -> Result<Vec<(String, FileType)>, String> {
        let rd = std::fs::read_dir(path).map_err(|e| io_err(path, e))?;
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| io_err(path, e))?;
            let ft = ent.file_type().map_err(|e| io_err(path, e))?;
            let t = if ft.is_symlink() {
                FileType::Symlink
            } else if ft.is_dir() {
                FileType::Directory
            } else if ft.is_file() {
                FileType::Regular
            } else {
                FileType::Unknown
            };
            out.push((ent.file_name().to_string_lossy().into_owned(), t));
        }
        Ok(out)
    }
    fn path_exists(&self, path: &str) -> bool {
        std::fs::symlink_metadata(path).is_ok()
    }
    fn file_type(&self, path: &str) -> Result<FileType, String> {
        let m = std::fs::symlink_metadata(path).map_err(|e| io_err(path, e))?;
        let ft = m.file_type();
        Ok(if ft.is_symlink() {
            FileType::Symlink
        } else if ft.is_dir() {
            FileType::Directory
        } else if ft.is_file() {
            FileType::Regular
        } else {
            FileType::Unknown
        })
    }
    fn import_path(&self, path: &str) -> Result<String, String> {
        Err(format!("cannot copy '{path}' to the store: this evaluator has no store (the glue provides one)"))
    }
    fn canonicalize(&self, path: &str) -> Result<String, String> {
        std::fs::canonicalize(path).map(|p| p.display().to_string()).map_err(|e| io_err(path, e))
    }
}
