//! Byte layouts of the embedded backend's tables.
//!
//! A key entry is `create_revision, mod_revision, version, lease` as
//! little-endian `i64`s followed by the value. A log event is one byte of
//! kind, then the same four numbers, the key's length as `u32`, the key and
//! the value.

use yunshu_core::{
    Error, Result,
    store::{EventKind, KeyValue, WatchEvent},
};

const HEADER: usize = 32;

/// Encodes a key entry.
pub(crate) fn encode_entry(kv: &KeyValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + kv.value.len());
    push_header(&mut out, kv);
    out.extend_from_slice(&kv.value);
    out
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

/// The revisions, version and lease of an entry, without copying its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: Option<i64>,
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
    let lease = read_i64(bytes, 24)?;
    Ok(KeyValue {
        key: key.to_owned(),
        create_revision: read_i64(bytes, 0)?,
        mod_revision: read_i64(bytes, 8)?,
        version: read_i64(bytes, 16)?,
        lease: (lease != 0).then_some(lease),
        value: bytes[HEADER..].to_vec(),
    })
}

/// Encodes a log event.
pub(crate) fn encode_event(ev: &WatchEvent) -> Vec<u8> {
    let kv = &ev.kv;
    let mut out = Vec::with_capacity(1 + HEADER + 4 + kv.key.len() + kv.value.len());
    out.push(match ev.kind {
        EventKind::Put => 0,
        EventKind::Delete => 1,
    });
    push_header(&mut out, kv);
    out.extend_from_slice(
        &u32::try_from(kv.key.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(kv.key.as_bytes());
    out.extend_from_slice(&kv.value);
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
    let key_len = body
        .get(HEADER..HEADER + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(truncated)? as usize;
    let key_start = HEADER + 4;
    let key = body
        .get(key_start..key_start + key_len)
        .ok_or_else(truncated)?;
    let key = std::str::from_utf8(key)
        .map_err(|_| Error::internal("embedded store log key is not UTF-8"))?;
    let mut kv = decode_entry(key, &body[..HEADER])?;
    kv.value = body[key_start + key_len..].to_vec();
    Ok(WatchEvent { kind, kv })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_and_event_round_trip() {
        let kv = KeyValue {
            key: "/yunshu/x".into(),
            value: b"hello".to_vec(),
            create_revision: 3,
            mod_revision: 9,
            version: 4,
            lease: Some(77),
        };
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
}
