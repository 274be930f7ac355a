//! The record codec: every stored record carries a schema version.
//!
//! A record is JSON `{"schemaVersion": N, "data": …}`. Readers refuse versions
//! newer than they know, so a downgrade never misreads data.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{
    error::{Error, Result},
    meta::{Object, Spec},
    store::KeyValue,
};

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeRef<'a, T> {
    schema_version: u32,
    data: &'a T,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<T> {
    schema_version: u32,
    data: T,
}

/// Encodes a record with the current schema version.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(&EnvelopeRef {
        schema_version: SCHEMA_VERSION,
        data: value,
    })
    .map_err(|e| Error::Internal {
        message: "failed to encode record".into(),
        source: Some(Box::new(e)),
    })
}

/// Decodes a record, refusing unknown schema versions.
pub fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    let env: Envelope<serde_json::Value> =
        serde_json::from_slice(bytes).map_err(|e| Error::Internal {
            message: format!("failed to decode record at {key}"),
            source: Some(Box::new(e)),
        })?;
    if env.schema_version == 0 || env.schema_version > SCHEMA_VERSION {
        return Err(Error::internal(format!(
            "record at {key} has schema version {}, this build reads 1..={SCHEMA_VERSION}",
            env.schema_version
        )));
    }
    serde_json::from_value(env.data).map_err(|e| Error::Internal {
        message: format!("failed to decode record at {key}"),
        source: Some(Box::new(e)),
    })
}

/// Decodes an object and fills in its store revision.
pub fn decode_object<S: Spec>(kv: &KeyValue) -> Result<Object<S>> {
    let mut obj: Object<S> = decode(&kv.key, &kv.value)?;
    obj.meta.revision = kv.mod_revision;
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_carry_schema_version() {
        let bytes = encode(&42u32).expect("encode");
        assert_eq!(
            std::str::from_utf8(&bytes).expect("utf8"),
            r#"{"schemaVersion":1,"data":42}"#
        );
        assert_eq!(decode::<u32>("k", &bytes).expect("decode"), 42);
    }

    #[test]
    fn newer_schema_is_refused() {
        let err = decode::<u32>("k", br#"{"schemaVersion":9,"data":1}"#).expect_err("refused");
        assert!(err.to_string().contains("schema version 9"), "{err}");
    }
}
