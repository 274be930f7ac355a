//! Byte layouts of the embedded backend's tables and log.
//!
//! A key entry is `create_revision, mod_revision, version, lease` as
//! little-endian `i64`s followed by the value. A log event is one byte of
//! kind, then the same four numbers, the key's length as `u32`, the key and
//! the value. A batch — every event of one revision — is `revision: i64 |
//! count: u32 | (len: u32 | event)*`; the same bytes are a write-ahead log
//! record's payload and a `history` table value, so a batch is encoded once.

use yunshu_core::{
    Error, Result,
    store::{EventKind, KeyValue, Revision, WatchEvent},
};

const HEADER: usize = 32;

/// Bytes in front of a batch's payload in a write-ahead log frame: the
/// payload's length (`u32`) and checksum (`u64`).
pub(crate) const FRAME_HEADER: usize = 12;

/// Encodes a key entry.
#[cfg(test)]
pub(crate) fn encode_entry(kv: &KeyValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + kv.value.len());
    push_entry(&mut out, kv);
    out
}

/// Appends an encoded key entry to `out`.
pub(crate) fn push_entry(out: &mut Vec<u8>, kv: &KeyValue) {
    out.reserve(HEADER + kv.value.len());
    push_header(out, kv);
    out.extend_from_slice(&kv.value);
}

fn push_header(out: &mut Vec<u8>, kv: &KeyValue) {
    out.extend_from_slice(&kv.create_revision.to_le_bytes());
    out.extend_from_slice(&kv.mod_revision.to_le_bytes());
    out.extend_from_slice(&kv.version.to_le_bytes());
    out.extend_from_slice(&kv.lease.unwrap_or(0).to_le_bytes());
}

fn read_i64(bytes: &[u8], at: usize) -> Result<i64> {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(i64::from_le_bytes)
        .ok_or_else(|| Error::internal("embedded store record is truncated"))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<usize> {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(|b| u32::from_le_bytes(b) as usize)
}

fn len_u32(n: usize) -> [u8; 4] {
    u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes()
}

/// The revisions, version and lease of an entry, without its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: Option<i64>,
}

impl Header {
    /// The header of a stored entry.
    pub fn of(kv: &KeyValue) -> Self {
        Self {
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
        }
    }
}

/// Reads an entry's header.
pub(crate) fn header(bytes: &[u8]) -> Result<Header> {
    let lease = read_i64(bytes, 24)?;
    Ok(Header {
        create_revision: read_i64(bytes, 0)?,
        mod_revision: read_i64(bytes, 8)?,
        version: read_i64(bytes, 16)?,
        lease: (lease != 0).then_some(lease),
    })
}

/// Decodes a key entry.
pub(crate) fn decode_entry(key: &str, bytes: &[u8]) -> Result<KeyValue> {
    let h = header(bytes)?;
    Ok(KeyValue {
        key: key.to_owned(),
        create_revision: h.create_revision,
        mod_revision: h.mod_revision,
        version: h.version,
        lease: h.lease,
        value: bytes[HEADER..].to_vec(),
    })
}

fn event_len(ev: &WatchEvent) -> usize {
    1 + HEADER + 4 + ev.kv.key.len() + ev.kv.value.len()
}

fn push_event(out: &mut Vec<u8>, ev: &WatchEvent) {
    let kv = &ev.kv;
    out.push(match ev.kind {
        EventKind::Put => 0,
        EventKind::Delete => 1,
    });
    push_header(out, kv);
    out.extend_from_slice(&len_u32(kv.key.len()));
    out.extend_from_slice(kv.key.as_bytes());
    out.extend_from_slice(&kv.value);
}

/// Encodes a log event.
#[cfg(test)]
pub(crate) fn encode_event(ev: &WatchEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(event_len(ev));
    push_event(&mut out, ev);
    out
}

/// Decodes a log event.
pub(crate) fn decode_event(bytes: &[u8]) -> Result<WatchEvent> {
    let truncated = || Error::internal("embedded store log event is truncated");
    let kind = match bytes.first() {
        Some(0) => EventKind::Put,
        Some(1) => EventKind::Delete,
        _ => return Err(truncated()),
    };
    let body = &bytes[1..];
    let key_len = read_u32(body, HEADER).ok_or_else(truncated)?;
    let key_start = HEADER + 4;
    let key = body
        .get(key_start..key_start + key_len)
        .ok_or_else(truncated)?;
    let key = std::str::from_utf8(key)
        .map_err(|_| Error::internal("embedded store log key is not UTF-8"))?;
    let h = header(body)?;
    Ok(WatchEvent {
        kind,
        kv: KeyValue {
            key: key.to_owned(),
            value: body[key_start + key_len..].to_vec(),
            create_revision: h.create_revision,
            mod_revision: h.mod_revision,
            version: h.version,
            lease: h.lease,
        },
    })
}

/// Encodes a batch as a write-ahead log frame: [`FRAME_HEADER`] bytes left
/// for the log to fill, then the payload (`frame[FRAME_HEADER..]`).
pub(crate) fn encode_batch(revision: Revision, events: &[WatchEvent]) -> Vec<u8> {
    let size = FRAME_HEADER + 12 + events.iter().map(|e| 4 + event_len(e)).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.resize(FRAME_HEADER, 0);
    out.extend_from_slice(&revision.to_le_bytes());
    out.extend_from_slice(&len_u32(events.len()));
    for ev in events {
        out.extend_from_slice(&len_u32(event_len(ev)));
        push_event(&mut out, ev);
    }
    out
}

/// Decodes a batch payload; with a prefix, keeps only the events under it.
pub(crate) fn decode_batch(
    payload: &[u8],
    prefix: Option<&str>,
) -> Result<(Revision, Vec<WatchEvent>)> {
    let truncated = || Error::internal("embedded store batch is truncated");
    let revision = read_i64(payload, 0)?;
    let count = read_u32(payload, 8).ok_or_else(truncated)?;
    let mut events = Vec::with_capacity(if prefix.is_some() { 0 } else { count });
    let mut at = 12;
    for _ in 0..count {
        let n = read_u32(payload, at).ok_or_else(truncated)?;
        let bytes = payload.get(at + 4..at + 4 + n).ok_or_else(truncated)?;
        at += 4 + n;
        if let Some(p) = prefix {
            // The key sits after the kind byte, header and key length.
            let key_len = read_u32(bytes, 1 + HEADER).ok_or_else(truncated)?;
            let key = bytes
                .get(1 + HEADER + 4..1 + HEADER + 4 + key_len)
                .ok_or_else(truncated)?;
            if !key.starts_with(p.as_bytes()) {
                continue;
            }
        }
        events.push(decode_event(bytes)?);
    }
    Ok((revision, events))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &[u8]) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.to_vec(),
            create_revision: 3,
            mod_revision: 9,
            version: 4,
            lease: Some(77),
        }
    }

    #[test]
    fn entry_and_event_round_trip() {
        let kv = kv("/yunshu/x", b"hello");
        assert_eq!(
            decode_entry(&kv.key, &encode_entry(&kv)).expect("entry"),
            kv
        );
        let ev = WatchEvent {
            kind: EventKind::Delete,
            kv: kv.clone(),
        };
        assert_eq!(decode_event(&encode_event(&ev)).expect("event"), ev);
        assert!(decode_event(&[0, 1, 2]).is_err());
    }

    #[test]
    fn batches_round_trip_and_filter_by_prefix() {
        let events = vec![
            WatchEvent {
                kind: EventKind::Put,
                kv: kv("/a/1", b"one"),
            },
            WatchEvent {
                kind: EventKind::Delete,
                kv: kv("/b/2", b""),
            },
        ];
        let frame = encode_batch(9, &events);
        let payload = &frame[FRAME_HEADER..];
        assert_eq!(
            decode_batch(payload, None).expect("batch"),
            (9, events.clone())
        );
        let (_, only_b) = decode_batch(payload, Some("/b/")).expect("batch");
        assert_eq!(only_b, vec![events[1].clone()]);
        assert!(decode_batch(&payload[..payload.len() - 1], None).is_err());
    }
}
