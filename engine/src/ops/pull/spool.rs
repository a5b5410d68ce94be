//! The temporary file a pull page is downloaded into. The rule "never hold a SQLite
//! write transaction across network I/O" forbids applying rows while the socket is
//! read, and holding the page in memory grows with the bundle size; so the body is
//! written to disk first and applied from there once no request is in flight.
//!
//! Location: next to the database file (its directory is writable, since SQLite
//! writes its journal there, and it is app-private on mobile platforms where the
//! system temp directory may not be usable); `std::env::temp_dir()` for in-memory or
//! temporary databases, or when the database directory refuses the file. The name is
//! unique (random UUID) and created exclusively. On Unix the name is unlinked as soon
//! as the file is open, so not even a crash or `kill -9` can leave it behind; elsewhere
//! it is deleted when the spool is dropped, on success and on every error path.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::error::{ErrorKind, Result, SyncError};

pub(crate) struct Spool {
    file: File,
    /// The name still to delete on drop (non-Unix only; Unix unlinks at creation).
    path: Option<PathBuf>,
}

impl Spool {
    /// A new, empty spool file for `conn`'s database.
    pub fn create(conn: &Connection) -> Result<Spool> {
        let name = format!(".oversqlite-pull-{}.tmp", uuid::Uuid::new_v4().simple());
        let db_dir = conn
            .path()
            .filter(|p| !p.is_empty())
            .and_then(|p| Path::new(p).parent().map(Path::to_path_buf))
            .map(|d| {
                if d.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    d
                }
            });
        let mut last_err = None;
        for dir in db_dir.into_iter().chain([std::env::temp_dir()]) {
            match Self::create_in(&dir.join(&name)) {
                Ok(spool) => return Ok(spool),
                Err(e) => last_err = Some(e),
            }
        }
        Err(SyncError::new(
            ErrorKind::DatabaseError,
            format!(
                "cannot create a temporary file for the pull response: {}",
                last_err.map(|e| e.to_string()).unwrap_or_default()
            ),
        ))
    }

    fn create_in(path: &Path) -> std::io::Result<Spool> {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create_new(true);
        // Pulled rows are the user's data: readable by the owner only, also in a
        // shared temp directory.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path)?;
        // On Unix the open handle keeps the data and the name is dropped at once; if
        // that fails (or elsewhere) the name is kept and deleted when the spool drops.
        let unlinked = cfg!(unix) && std::fs::remove_file(path).is_ok();
        let path = (!unlinked).then(|| path.to_path_buf());
        Ok(Spool { file, path })
    }

    pub fn file_mut(&mut self) -> &mut File {
        &mut self.file
    }

    /// A buffered reader over the whole content, from the start.
    pub fn reader(&mut self) -> Result<BufReader<&mut File>> {
        self.file.seek(SeekFrom::Start(0)).map_err(io_error)?;
        Ok(BufReader::with_capacity(64 * 1024, &mut self.file))
    }
}

fn io_error(e: std::io::Error) -> SyncError {
    SyncError::new(
        ErrorKind::DatabaseError,
        format!("reading the spooled pull response failed: {e}"),
    )
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_spool_is_private_nameless_and_readable_from_the_start() {
        let dir =
            std::env::temp_dir().join(format!("spool-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).unwrap();
        let conn = Connection::open(dir.join("app.db")).unwrap();
        let listing = || -> Vec<String> {
            std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".oversqlite-pull-"))
                .collect()
        };
        let mut spool = Spool::create(&conn).unwrap();
        assert_eq!(
            listing(),
            Vec::<String>::new(),
            "the name is gone once open"
        );
        let mode = spool.file_mut().metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        spool.file_mut().write_all(b"page body").unwrap();
        let mut text = String::new();
        spool.reader().unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "page body");
        drop(spool);
        drop(conn);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
