//! Ownership of state directories: an exclusive lock file per directory, held for as long as
//! an instance uses it (as Kafka Streams locks `state.dir/<application.id>`).
//!
//! The lock is `flock(2)` on `<dir>/.lock`, taken without waiting: the kernel releases it when
//! its holder exits, however it exits, and it holds across processes in other PID namespaces
//! sharing the directory, where a PID is meaningless. The holder's PID is written into the file
//! only to name it in the error another instance gets.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// The lock file's name inside a locked directory.
pub(crate) const LOCK_FILE: &str = ".lock";

/// An exclusive hold on a directory, released on drop.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Creates `dir` when missing and locks it; an error naming the holder's PID when another
    /// instance (in this process or another) holds it.
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        match Self::try_acquire(dir)? {
            Ok(lock) => Ok(lock),
            Err(holder) => Err(Error::Config(format!(
                "state directory {} is in use by another instance{}: give each instance its own \
                 state_dir (two instances sharing one would corrupt each other's stores)",
                dir.display(),
                holder
                    .map(|pid| format!(" (pid {pid})"))
                    .unwrap_or_default()
            ))),
        }
    }

    /// The lock, or `Err(holder's pid if known)` when another holds it.
    pub fn try_acquire(dir: &Path) -> Result<std::result::Result<DirLock, Option<u32>>> {
        std::fs::create_dir_all(dir)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Ok(Err(text.trim().parse().ok()));
            }
            Err(TryLockError::Error(e)) => return Err(e.into()),
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        Ok(Ok(DirLock { _file: file }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let root = std::env::temp_dir().join(format!("streamkit-dirlock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = root.join("app");
        let first = DirLock::acquire(&dir).unwrap();
        let err = DirLock::acquire(&dir).unwrap_err().to_string();
        assert!(err.contains("in use by another instance"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        let again = DirLock::acquire(&dir).unwrap();
        drop(again);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
