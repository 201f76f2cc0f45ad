//! Checkpoint files: per store, the changelog offset its persistent contents reflect.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::Result;

/// `<task dir>/.checkpoint`: per store, the changelog offset its persistent contents reflect.
/// One `store offset` line each; rewritten atomically (write + rename) at every commit.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint(pub BTreeMap<String, i64>);

impl Checkpoint {
    const FILE: &str = ".checkpoint";

    pub fn read(dir: &Path) -> Result<Checkpoint> {
        let path = dir.join(Self::FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Checkpoint::default()),
            Err(e) => return Err(e.into()),
        };
        let mut map = BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let parsed = line
                .rsplit_once(' ')
                .and_then(|(s, o)| o.parse::<i64>().ok().map(|o| (s.to_string(), o)));
            match parsed {
                Some((store, offset)) => {
                    map.insert(store, offset);
                }
                None => {
                    // A torn or foreign file: restore everything from the beginning.
                    tracing::warn!(path = %path.display(), "ignoring unreadable checkpoint");
                    return Ok(Checkpoint::default());
                }
            }
        }
        Ok(Checkpoint(map))
    }

    /// Deletes the checkpoint file, if there is one.
    pub fn remove(dir: &Path) -> Result<()> {
        match std::fs::remove_file(dir.join(Self::FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Writes the file durably, as Kafka Streams' `OffsetCheckpoint` does: the data is synced
    /// before the rename and the directory after it, so a power loss leaves either the old
    /// checkpoint or the new one — never a renamed file whose contents were not yet on disk,
    /// which would claim offsets the stores do not hold.
    pub fn write(&self, dir: &Path) -> Result<()> {
        use std::io::Write;
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(".checkpoint.tmp");
        let text: String = self.0.iter().map(|(s, o)| format!("{s} {o}\n")).collect();
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(tmp, dir.join(Self::FILE))?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_and_tolerate_garbage() {
        let dir = std::env::temp_dir().join(format!("streamkit-ckpt-{}", std::process::id()));
        let c = Checkpoint(BTreeMap::from([
            ("counts".to_string(), 42),
            ("sums".to_string(), 7),
        ]));
        c.write(&dir).unwrap();
        assert_eq!(Checkpoint::read(&dir).unwrap(), c);
        std::fs::write(dir.join(".checkpoint"), "counts forty-two").unwrap();
        assert_eq!(Checkpoint::read(&dir).unwrap(), Checkpoint::default());
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(Checkpoint::read(&dir).unwrap(), Checkpoint::default());
    }
}
