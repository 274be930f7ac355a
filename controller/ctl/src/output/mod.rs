//! Printing results: aligned tables for people, JSON and YAML for programs.
//!
//! JSON and YAML use the API's field names (snake_case, as in the protos),
//! enums as their CamelCase names (`"phase": "Ready"`), timestamps as
//! RFC 3339 strings, sizes in the API's units (`memory_mib`, `disk_gib`,
//! `quota_bytes`). Every key is always present for a given kind — unset
//! optional values are `null` — so scripts can rely on the shape. Tables
//! may change between versions; parse JSON instead. The one exception to
//! snake_case is issued credentials ([`credentials`]), whose keys follow
//! S3 tooling's camelCase (`accessKeyId`, `secretAccessKey`).

pub mod bill;
pub mod credentials;
pub mod department;
pub mod describe;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod placement;
pub mod resource;

use std::io::{self, Write};

use chrono::{DateTime, Utc};
use serde::Serialize;
use yunshu_proto::api::v1::{ConditionStatus, Phase};

use crate::{
    cli::Format,
    error::{Error, Result},
};

/// Prints `value` as `format`; `table` renders the table form.
pub fn emit<T: Serialize + ?Sized>(
    format: Format,
    value: &T,
    out: &mut dyn Write,
    table: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<()> {
    match format {
        Format::Table => table(out)?,
        Format::Json => {
            // Encode first, so a closed stdout is an I/O error, not an encoding one.
            let text = serde_json::to_string_pretty(value).map_err(encode)?;
            writeln!(out, "{text}")?;
        }
        Format::Yaml => {
            let text = serde_yaml::to_string(value).map_err(encode)?;
            out.write_all(text.as_bytes())?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Prints one item of a stream: a compact JSON line, or a YAML document.
pub fn emit_streamed<T: Serialize>(format: Format, value: &T, out: &mut dyn Write) -> Result<()> {
    match format {
        Format::Json => {
            let text = serde_json::to_string(value).map_err(encode)?;
            writeln!(out, "{text}")?;
        }
        Format::Yaml | Format::Table => {
            let text = serde_yaml::to_string(value).map_err(encode)?;
            writeln!(out, "---")?;
            out.write_all(text.as_bytes())?;
        }
    }
    out.flush()?;
    Ok(())
}

fn encode(e: impl std::fmt::Display) -> Error {
    Error::Encode(e.to_string())
}

/// A phase's name as people and JSON see it: `Pending`, `Ready`, …
pub const fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Unspecified => "Unknown",
        Phase::Pending => "Pending",
        Phase::Unschedulable => "Unschedulable",
        Phase::Scheduled => "Scheduled",
        Phase::Provisioning => "Provisioning",
        Phase::Ready => "Ready",
        Phase::Failed => "Failed",
        Phase::Deleting => "Deleting",
    }
}

/// A condition status's name: `True`, `False`, `Unknown`.
pub fn condition_status_name(status: i32) -> &'static str {
    match ConditionStatus::try_from(status) {
        Ok(ConditionStatus::True) => "True",
        Ok(ConditionStatus::False) => "False",
        _ => "Unknown",
    }
}

/// A protobuf timestamp as a UTC time.
pub fn time(ts: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    let ts = ts?;
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
}

/// A protobuf timestamp as RFC 3339, e.g. `2026-05-01T08:30:00Z`.
pub fn rfc3339(ts: Option<&prost_types::Timestamp>) -> Option<String> {
    time(ts).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// A protobuf timestamp to the second, for tables: `2026-05-01T08:30:00Z`.
pub fn rfc3339_secs(ts: Option<&prost_types::Timestamp>) -> Option<String> {
    time(ts).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// How long ago `ts` was, compactly (`3m`); empty when unknown.
pub fn age(ts: Option<&prost_types::Timestamp>, now: DateTime<Utc>) -> String {
    time(ts)
        .map(|t| crate::units::format_age((now - t).to_std().unwrap_or_default()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_in_utc() {
        let ts = prost_types::Timestamp {
            seconds: 1_777_624_200,
            nanos: 0,
        };
        assert_eq!(rfc3339(Some(&ts)).as_deref(), Some("2026-05-01T08:30:00Z"));
        let now = time(Some(&ts)).expect("valid") + chrono::Duration::seconds(150);
        assert_eq!(age(Some(&ts), now), "2m");
        assert_eq!(age(None, now), "");
        // A clock behind the server's shows zero, not a panic.
        assert_eq!(age(Some(&ts), now - chrono::Duration::hours(1)), "0s");
    }

    #[test]
    fn a_closed_stdout_is_a_broken_pipe_in_every_format() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        for format in [Format::Table, Format::Json, Format::Yaml] {
            let e = emit(format, &[1, 2], &mut Closed, |w| writeln!(w, "x"))
                .expect_err("stdout is closed");
            assert!(e.is_broken_pipe(), "{format:?}: {e}");
        }
    }

    #[test]
    fn json_and_yaml_are_parseable() {
        #[derive(Serialize)]
        struct V {
            phase: &'static str,
        }
        let mut out = Vec::new();
        emit(Format::Json, &V { phase: "Ready" }, &mut out, |_| Ok(())).expect("emits");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["phase"], "Ready");
        let mut out = Vec::new();
        emit(Format::Yaml, &V { phase: "Ready" }, &mut out, |_| Ok(())).expect("emits");
        assert_eq!(String::from_utf8_lossy(&out), "phase: Ready\n");
        let mut out = Vec::new();
        emit_streamed(Format::Json, &V { phase: "Ready" }, &mut out).expect("emits");
        assert_eq!(String::from_utf8_lossy(&out), "{\"phase\":\"Ready\"}\n");
    }
}
