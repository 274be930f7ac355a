//! The write-ahead log that makes cheap redb commits durable.
//!
//! A redb commit that is durable on its own rewrites every B-tree page the
//! transaction touched; with a batch of admissions scattered over the key
//! space that is hundreds of pages per commit. Like etcd (WAL + periodic
//! bbolt commits), the embedded backend instead appends each transaction's
//! effects — its events, which carry full key entries and the revision — to
//! this log with one `fdatasync`, commits redb without syncing, and every so
//! often makes a durable redb commit (a checkpoint) and truncates the log. On
//! open, records newer than redb's durable revision are replayed.
//!
//! Record: `len: u32 | checksum: u64 (FNV-1a of the payload) | payload`,
//! payload: `revision: i64 | count: u32 | (len: u32 | event)*`. A torn tail
//! (a crash mid-append) fails its checksum and is cut off.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Write},
    path::{Path, PathBuf},
};

use yunshu_core::{
    Error, Result,
    store::{Revision, WatchEvent},
};

use super::record;

/// Checkpoint after this many records…
const CHECKPOINT_RECORDS: u64 = 512;
/// …or this many bytes.
const CHECKPOINT_BYTES: u64 = 64 << 20;

fn io_err(action: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::Internal {
        message: format!("embedded store failed to {action}"),
        source: Some(Box::new(e)),
    }
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One replayable transaction.
#[derive(Debug)]
pub(crate) struct WalRecord {
    pub revision: Revision,
    pub events: Vec<WatchEvent>,
}

/// An open log.
#[derive(Debug)]
pub(crate) struct Wal {
    file: File,
    path: PathBuf,
    records: u64,
    bytes: u64,
}

impl Wal {
    /// Opens the log beside the database and reads its valid records.
    pub fn open(db_path: &Path) -> Result<(Self, Vec<WalRecord>)> {
        let mut path = db_path.as_os_str().to_owned();
        path.push(".wal");
        let path = PathBuf::from(path);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_err("open the write-ahead log"))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)
            .map_err(io_err("read the write-ahead log"))?;
        let (records, valid) = parse(&data);
        if valid < data.len() {
            tracing::warn!(path = %path.display(), torn = data.len() - valid, "cutting a torn write-ahead log tail");
            file.set_len(valid as u64)
                .map_err(io_err("cut the write-ahead log"))?;
            file.sync_data()
                .map_err(io_err("sync the write-ahead log"))?;
        }
        let wal = Self {
            file,
            path,
            records: records.len() as u64,
            bytes: valid as u64,
        };
        Ok((wal, records))
    }

    /// Whether the next commit should be a durable checkpoint.
    pub fn checkpoint_due(&self) -> bool {
        self.records >= CHECKPOINT_RECORDS || self.bytes >= CHECKPOINT_BYTES
    }

    /// Whether the log holds records not yet checkpointed.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Appends one transaction and syncs it to disk.
    pub fn append(&mut self, revision: Revision, events: &[WatchEvent]) -> Result<()> {
        let mut payload = Vec::with_capacity(64 + events.len() * 256);
        payload.extend_from_slice(&revision.to_le_bytes());
        payload.extend_from_slice(
            &u32::try_from(events.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        for ev in events {
            let bytes = record::encode_event(ev);
            payload
                .extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
            payload.extend_from_slice(&bytes);
        }
        let mut buf = Vec::with_capacity(12 + payload.len());
        buf.extend_from_slice(
            &u32::try_from(payload.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        buf.extend_from_slice(&checksum(&payload).to_le_bytes());
        buf.extend_from_slice(&payload);
        self.file
            .write_all(&buf)
            .map_err(io_err("append to the write-ahead log"))?;
        self.file
            .sync_data()
            .map_err(io_err("sync the write-ahead log"))?;
        self.records += 1;
        self.bytes += buf.len() as u64;
        Ok(())
    }

    /// Empties the log after a durable checkpoint.
    pub fn reset(&mut self) -> Result<()> {
        self.file
            .set_len(0)
            .map_err(io_err("truncate the write-ahead log"))?;
        self.file
            .sync_data()
            .map_err(io_err("sync the write-ahead log"))?;
        self.records = 0;
        self.bytes = 0;
        tracing::trace!(path = %self.path.display(), "write-ahead log checkpointed");
        Ok(())
    }
}

/// The valid records and the length of the valid prefix.
fn parse(data: &[u8]) -> (Vec<WalRecord>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(rec) = parse_one(data, at) {
        let (r, next) = rec;
        records.push(r);
        at = next;
    }
    (records, at)
}

fn parse_one(data: &[u8], at: usize) -> Option<(WalRecord, usize)> {
    let len = u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?) as usize;
    let sum = u64::from_le_bytes(data.get(at + 4..at + 12)?.try_into().ok()?);
    let payload = data.get(at + 12..at + 12 + len)?;
    if checksum(payload) != sum {
        return None;
    }
    let revision = i64::from_le_bytes(payload.get(0..8)?.try_into().ok()?);
    let count = u32::from_le_bytes(payload.get(8..12)?.try_into().ok()?) as usize;
    let mut events = Vec::with_capacity(count);
    let mut p = 12;
    for _ in 0..count {
        let n = u32::from_le_bytes(payload.get(p..p + 4)?.try_into().ok()?) as usize;
        events.push(record::decode_event(payload.get(p + 4..p + 4 + n)?).ok()?);
        p += 4 + n;
    }
    Some((WalRecord { revision, events }, at + 12 + len))
}

#[cfg(test)]
mod tests {
    use yunshu_core::store::{EventKind, KeyValue};

    use super::*;

    fn ev(key: &str, rev: i64) -> WatchEvent {
        WatchEvent {
            kind: EventKind::Put,
            kv: KeyValue {
                key: key.into(),
                value: b"v".to_vec(),
                create_revision: rev,
                mod_revision: rev,
                version: 1,
                lease: None,
            },
        }
    }

    #[test]
    fn records_survive_reopen_and_torn_tails_are_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("db.redb");
        {
            let (mut wal, recs) = Wal::open(&db).expect("open");
            assert!(recs.is_empty());
            wal.append(1, &[ev("/a", 1), ev("/b", 1)]).expect("append");
            wal.append(2, &[ev("/c", 2)]).expect("append");
        }
        let wal_path = dir.path().join("db.redb.wal");
        let full = std::fs::read(&wal_path).expect("read");
        std::fs::write(&wal_path, &full[..full.len() - 3]).expect("tear the tail");
        let (wal, recs) = Wal::open(&db).expect("reopen");
        assert_eq!(recs.len(), 1, "the torn record is dropped");
        assert_eq!((recs[0].revision, recs[0].events.len()), (1, 2));
        assert!(!wal.is_empty());
        assert!(std::fs::metadata(&wal_path).expect("stat").len() < full.len() as u64);
    }
}
