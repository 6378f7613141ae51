//! Files and folders only the server's own user may read: the database, the signing keys, the
//! local blob store. On Unix folders are created 0700 and files 0600, whatever the umask; the
//! modes of things that already exist are left as the operator set them.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// `mkdir -p` with mode 0700 for every folder it creates.
pub fn create_dir_all(path: &Path) -> std::io::Result<()> {
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// Creates `path` empty with mode 0600 unless it exists (then it is left alone).
pub fn create_file_if_missing(path: &Path) -> std::io::Result<()> {
    match private_options().open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes `bytes` to a new file `path` with mode 0600 from its creation (replacing any file
/// there), so its contents are never readable by others, even for a moment.
pub fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut file: File = private_options().open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Whether users other than the owner may read `path` (always false off Unix).
pub fn readable_by_others(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}
