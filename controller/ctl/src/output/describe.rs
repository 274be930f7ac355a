//! Resources as tables: list rows, the detail view of `get`, and the
//! fixed-width lines of `watch`.

use std::{
    collections::BTreeMap,
    io::{self, Write},
};

use chrono::{DateTime, Utc};
use yunshu_proto::api::v1 as pb;

use super::{
    age, phase_name,
    resource::{ResourceView, constraints, event_name},
    rfc3339_secs,
};
use crate::{
    resource::{Event, Kind, Resource},
    table::{Table, list},
    units::{format_bytes, format_gib, format_mib},
};

/// The list table's header for a kind.
pub fn list_header(kind: Kind) -> Table {
    match kind {
        Kind::Instance => Table::new([
            "NAME",
            "PHASE",
            "VCPU",
            "MEMORY",
            "DISK",
            "IMAGE",
            "FOUNDATION",
            "ADDRESSES",
            "AGE",
        ]),
        Kind::Volume => Table::new(["NAME", "PHASE", "SIZE", "ATTACHED-TO", "FOUNDATION", "AGE"]),
        Kind::Bucket => Table::new([
            "NAME",
            "PHASE",
            "QUOTA",
            "USED",
            "VERSIONING",
            "FOUNDATION",
            "ENDPOINTS",
            "AGE",
        ]),
    }
}

/// Appends a resource's list row.
pub fn list_row(table: &mut Table, r: &Resource, now: DateTime<Utc>) {
    let phase = phase_name(r.phase()).to_owned();
    let created = age(r.meta().create_time.as_ref(), now);
    let foundation = r.foundation().to_owned();
    let addresses = list(r.addresses());
    match r {
        Resource::Instance(i) => {
            let s = i.spec.clone().unwrap_or_default();
            table.row([
                r.name().to_owned(),
                phase,
                s.vcpu.to_string(),
                format_mib(s.memory_mib),
                format_gib(s.disk_gib),
                s.image,
                foundation,
                addresses,
                created,
            ]);
        }
        Resource::Volume(v) => {
            let s = v.spec.clone().unwrap_or_default();
            table.row([
                r.name().to_owned(),
                phase,
                format_gib(s.size_gib),
                r.attachment(),
                foundation,
                created,
            ]);
        }
        Resource::Bucket(b) => {
            let s = b.spec.clone().unwrap_or_default();
            let versioning = if s.versioning { "on" } else { "off" };
            table.row([
                r.name().to_owned(),
                phase,
                format_bytes(s.quota_bytes),
                used(b),
                versioning.to_owned(),
                foundation,
                addresses,
                created,
            ]);
        }
    }
}

/// Writes resources as a list table.
pub fn render_list(
    kind: Kind,
    items: &[Resource],
    now: DateTime<Utc>,
    w: &mut dyn Write,
) -> io::Result<()> {
    let mut table = list_header(kind);
    for r in items {
        list_row(&mut table, r, now);
    }
    table.render(w)
}

/// Writes one resource in detail, `Field:   value` per line.
pub fn render_detail(r: &Resource, now: DateTime<Utc>, w: &mut dyn Write) -> io::Result<()> {
    let meta = r.meta();
    let mut t = Table::headless();
    t.row(["Name:", r.name()]);
    t.row(["Kind:", r.kind().as_str()]);
    t.row(["Resource name:", r.resource_name()]);
    t.row(["Phase:", phase_name(r.phase())]);
    t.row(["Foundation:", r.foundation()]);
    t.row(["Placement:", r.placement_summary()]);
    match r {
        Resource::Instance(i) => {
            let s = i.spec.clone().unwrap_or_default();
            t.row(["vCPU:".to_owned(), s.vcpu.to_string()]);
            t.row(["Memory:".to_owned(), format_mib(s.memory_mib)]);
            t.row(["Disk:".to_owned(), format_gib(s.disk_gib)]);
            t.row(["Image:".to_owned(), s.image.clone()]);
            constraint_rows(&mut t, s.constraints.as_ref());
            t.row(["Addresses:".to_owned(), list(r.addresses())]);
        }
        Resource::Volume(v) => {
            let s = v.spec.clone().unwrap_or_default();
            t.row(["Size:".to_owned(), format_gib(s.size_gib)]);
            t.row(["Attached to:".to_owned(), r.attachment()]);
            constraint_rows(&mut t, s.constraints.as_ref());
        }
        Resource::Bucket(b) => {
            let s = b.spec.clone().unwrap_or_default();
            t.row(["Quota:".to_owned(), format_bytes(s.quota_bytes)]);
            t.row([
                "Object limit:".to_owned(),
                s.quota_objects.map(|n| n.to_string()).unwrap_or_default(),
            ]);
            t.row(["Versioning:", if s.versioning { "on" } else { "off" }]);
            t.row(["Used:".to_owned(), used_in_detail(b)]);
            constraint_rows(&mut t, s.constraints.as_ref());
            t.row(["Endpoints:".to_owned(), list(r.addresses())]);
        }
    }
    let labels: BTreeMap<_, _> = meta.labels.iter().collect();
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    t.row(["Labels:".to_owned(), list(&labels)]);
    let created = match rfc3339_secs(meta.create_time.as_ref()) {
        Some(at) => format!("{at} ({} ago)", age(meta.create_time.as_ref(), now)),
        None => String::new(),
    };
    t.row(["Created:".to_owned(), created]);
    if let Some(at) = rfc3339_secs(meta.delete_time.as_ref()) {
        t.row(["Deletion requested:".to_owned(), at]);
    }
    t.row(["Request id:", &meta.request_id]);
    t.row(["Message:", r.message()]);
    t.render(w)?;
    let view = ResourceView::from(r);
    if !view.status.conditions.is_empty() {
        writeln!(w, "Conditions:")?;
        let mut c = Table::new(["  TYPE", "STATUS", "REASON", "MESSAGE"]);
        for cond in &view.status.conditions {
            c.row([
                format!("  {}", cond.r#type),
                cond.status.to_owned(),
                cond.reason.clone(),
                cond.message.clone(),
            ]);
        }
        c.render(w)?;
    }
    Ok(())
}

/// Whether the object store has reported a bucket's usage: a bucket that
/// never became Ready has no objects to count, so its zeros mean unknown.
fn usage_known(b: &pb::Bucket) -> Option<&pb::BucketStatus> {
    b.status.as_ref().filter(|s| {
        s.used_bytes > 0 || s.used_objects > 0 || s.phase == i32::from(pb::Phase::Ready)
    })
}

fn objects(n: u64) -> String {
    if n == 1 {
        "1 object".to_owned()
    } else {
        format!("{n} objects")
    }
}

/// The USED cell: `1.3Gi, 1204 objects`; empty (`-`) while unknown.
pub fn used(b: &pb::Bucket) -> String {
    usage_known(b).map_or_else(String::new, |s| {
        format!(
            "{}, {}",
            format_bytes(s.used_bytes),
            objects(s.used_objects)
        )
    })
}

/// The `Used:` line of `get`: against the quotas, `1.3Gi of 10Gi (13%),
/// 1204 of 5000 objects`.
pub fn used_in_detail(b: &pb::Bucket) -> String {
    let Some(s) = usage_known(b) else {
        return String::new();
    };
    let spec = b.spec.clone().unwrap_or_default();
    let bytes = if spec.quota_bytes > 0 {
        let quota = u128::from(spec.quota_bytes);
        // Rounded, so the percentage agrees with the rounded sizes beside it.
        let percent = (u128::from(s.used_bytes) * 100 + quota / 2) / quota;
        format!(
            "{} of {} ({percent}%)",
            format_bytes(s.used_bytes),
            format_bytes(spec.quota_bytes)
        )
    } else {
        format_bytes(s.used_bytes)
    };
    let count = match spec.quota_objects {
        Some(limit) => format!("{} of {limit} objects", s.used_objects),
        None => objects(s.used_objects),
    };
    format!("{bytes}, {count}")
}

fn constraint_rows(t: &mut Table, c: Option<&pb::Constraints>) {
    let c = constraints(c);
    t.row(["Requires:".to_owned(), list(&c.required_traits)]);
    t.row(["Forbids:".to_owned(), list(&c.forbidden_traits)]);
    t.row(["Zone:".to_owned(), c.zone.unwrap_or_default()]);
}

/// The fixed-width header of `watch`'s table output.
pub fn watch_header(w: &mut dyn Write) -> io::Result<()> {
    writeln!(
        w,
        "{:<10} {:<9} {:<24} {:<14} {:<16} DETAIL",
        "REVISION", "EVENT", "NAME", "PHASE", "FOUNDATION"
    )
}

/// One `watch` line; fixed widths, because later rows are not known yet.
pub fn watch_line(e: &Event, w: &mut dyn Write) -> io::Result<()> {
    let Some(r) = &e.resource else {
        return Ok(());
    };
    // The message (what it waits for, why it failed) when there is one:
    // it is news; the placement summary otherwise.
    let detail = if r.message().is_empty() {
        r.placement_summary()
    } else {
        r.message()
    };
    // A deletion carries only the name: no phase to show.
    let phase = match r.phase() {
        pb::Phase::Unspecified => "-",
        p => phase_name(p),
    };
    let line = format!(
        "{:<10} {:<9} {:<24} {:<14} {:<16} {}",
        e.revision,
        event_name(e.kind),
        r.name(),
        phase,
        or_dash(r.foundation()),
        detail
    );
    writeln!(w, "{}", line.trim_end())
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::time;

    use crate::output::fixtures::{bucket, instance, ts};

    fn now() -> DateTime<Utc> {
        time(ts(1_000_300).as_ref()).expect("valid")
    }

    #[test]
    fn instance_list_table() {
        let mut out = Vec::new();
        render_list(
            Kind::Instance,
            &[
                instance("web-1", pb::Phase::Ready),
                instance("database-primary", pb::Phase::Pending),
            ],
            now(),
            &mut out,
        )
        .expect("renders");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "NAME               PHASE     VCPU   MEMORY   DISK   IMAGE       FOUNDATION   ADDRESSES   AGE\n\
             web-1              Ready     4      8Gi      40Gi   kylin-v10   kunpeng-1    10.2.0.14   5m\n\
             database-primary   Pending   4      8Gi      40Gi   kylin-v10   kunpeng-1    10.2.0.14   5m\n"
        );
    }

    #[test]
    fn bucket_and_volume_rows() {
        let bucket = Resource::Bucket(pb::Bucket {
            metadata: Some(pb::ObjectMeta {
                name: "departments/health/buckets/scans".into(),
                ..Default::default()
            }),
            spec: Some(pb::BucketSpec {
                quota_bytes: 10 << 30,
                versioning: true,
                ..Default::default()
            }),
            status: None,
        });
        let mut out = Vec::new();
        render_list(Kind::Bucket, &[bucket], now(), &mut out).expect("renders");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text.lines().nth(1),
            Some("scans   Unknown   10Gi    -      on           -            -           -")
        );
        let volume = Resource::Volume(pb::Volume {
            metadata: Some(pb::ObjectMeta {
                name: "departments/health/volumes/data".into(),
                ..Default::default()
            }),
            spec: Some(pb::VolumeSpec {
                size_gib: 100,
                attach_to: "departments/health/instances/web-1".into(),
                constraints: None,
            }),
            status: None,
        });
        let mut out = Vec::new();
        render_list(Kind::Volume, &[volume], now(), &mut out).expect("renders");
        assert!(
            String::from_utf8(out)
                .expect("utf-8")
                .contains("data   Unknown   100Gi   web-1")
        );
    }

    #[test]
    fn detail_view_names_every_field() {
        let mut out = Vec::new();
        render_detail(&instance("web-1", pb::Phase::Ready), now(), &mut out).expect("renders");
        let text = String::from_utf8(out).expect("utf-8");
        for want in [
            "Name:            web-1",
            "Resource name:   departments/health/instances/web-1",
            "Phase:           Ready",
            "Foundation:      kunpeng-1",
            "Memory:          8Gi",
            "Requires:        xinchuang",
            "Forbids:         -",
            "Labels:          app=web",
            "(5m ago)",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }

    #[test]
    fn watch_lines_have_fixed_columns() {
        let e = Event {
            kind: pb::WatchEventType::Updated,
            revision: 42,
            resource: Some(instance("web-1", pb::Phase::Scheduled)),
        };
        let mut out = Vec::new();
        watch_header(&mut out).expect("header");
        watch_line(&e, &mut out).expect("line");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines[0].find("NAME"), lines[1].find("web-1"));
        assert_eq!(lines[0].find("PHASE"), lines[1].find("Scheduled"));
        assert!(lines[1].starts_with("42 "));
    }

    #[test]
    fn bucket_usage_shows_in_list_and_detail() {
        let mut out = Vec::new();
        render_list(
            Kind::Bucket,
            &[bucket("scans", pb::Phase::Ready)],
            now(),
            &mut out,
        )
        .expect("renders");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "NAME    PHASE   QUOTA   USED                  VERSIONING   FOUNDATION   ENDPOINTS               AGE",
                "scans   Ready   10Gi    1.3Gi, 1204 objects   on           ceph-1       http://127.0.0.1:7480   5m",
            ]
        );
        let mut out = Vec::new();
        render_detail(&bucket("scans", pb::Phase::Ready), now(), &mut out).expect("renders");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            text.contains("Used:            1.3Gi of 10Gi (13%), 1204 of 5000 objects"),
            "{text}"
        );
    }

    #[test]
    fn an_empty_ready_bucket_is_zero_and_an_unplaced_one_unknown() {
        let Resource::Bucket(mut b) = bucket("scans", pb::Phase::Ready) else {
            unreachable!("the fixture is a bucket");
        };
        if let Some(s) = b.status.as_mut() {
            (s.used_bytes, s.used_objects) = (0, 1);
        }
        assert_eq!(used(&b), "0, 1 object");
        if let Some(s) = b.status.as_mut() {
            (s.used_bytes, s.used_objects) = (0, 0);
        }
        assert_eq!(used(&b), "0, 0 objects");
        if let Some(s) = b.status.as_mut() {
            s.phase = pb::Phase::Pending.into();
        }
        assert_eq!(used(&b), "");
        b.spec = Some(pb::BucketSpec {
            quota_bytes: 0,
            quota_objects: None,
            ..Default::default()
        });
        if let Some(s) = b.status.as_mut() {
            s.used_bytes = 3 << 20;
        }
        assert_eq!(used_in_detail(&b), "3Mi, 0 objects");
    }
}
