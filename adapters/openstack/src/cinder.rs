//! Cinder: volumes, found by their uid metadata across all projects.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use yunshu_core::{ErrorKind, Result, adapter::CloudResource};

use crate::{
    nova::UID_KEY,
    session::{Call, Scope, Service, Session},
};

/// The fields of a Cinder volume the adapter reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Volume {
    /// Its id.
    pub id: String,
    /// Its name.
    #[serde(default)]
    pub name: Option<String>,
    /// creating, available, in-use, attaching, detaching, deleting, error…
    #[serde(default)]
    pub status: String,
    /// Size in GiB.
    #[serde(default)]
    pub size: u64,
    /// Its metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Where it is attached.
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// Its project.
    #[serde(rename = "os-vol-tenant-attr:tenant_id", default)]
    pub tenant_id: String,
    /// When it was created.
    #[serde(default)]
    pub created_at: String,
}

/// One attachment of a volume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Attachment {
    /// The server it is attached to.
    pub server_id: String,
    /// The device path inside the server, when known.
    #[serde(default)]
    pub device: Option<String>,
}

/// How Yunshu sees a volume. Pure: `ready` when `available` or `in-use`,
/// `failed` on any `error*` status; the message names attached servers.
pub fn volume_resource(v: &Volume) -> CloudResource {
    let failed = v.status.starts_with("error");
    let message = if failed {
        format!("Cinder reports the volume as {}", v.status)
    } else if v.attachments.is_empty() {
        String::new()
    } else {
        format!(
            "attached to server {}",
            v.attachments
                .iter()
                .map(|a| a.server_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    CloudResource {
        id: v.id.clone(),
        owner_uid: v.metadata.get(UID_KEY).cloned(),
        status: v.status.clone(),
        ready: v.status == "available" || v.status == "in-use",
        failed,
        addresses: v
            .attachments
            .iter()
            .filter_map(|a| a.device.clone())
            .collect(),
        message,
        bytes_used: None,
        objects_used: None,
    }
}

async fn list(session: &Session, metadata_filter: Option<&str>) -> Result<Vec<Volume>> {
    #[derive(Deserialize)]
    struct Page {
        volumes: Vec<Volume>,
    }
    const LIMIT: usize = 500;
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..200 {
        let mut call = Call::new(
            Method::GET,
            Service::Volume,
            "/volumes/detail",
            "list volumes",
        )
        .query("all_tenants", "1")
        .query("limit", LIMIT.to_string());
        if let Some(m) = metadata_filter {
            call = call.query("metadata", m);
        }
        if let Some(m) = &marker {
            call = call.query("marker", m.clone());
        }
        let page: Page = session.send(&Scope::Admin, &call).await?.json(&call.what)?;
        let n = page.volumes.len();
        marker = page.volumes.last().map(|v| v.id.clone());
        out.extend(page.volumes);
        if n < LIMIT {
            break;
        }
    }
    Ok(out)
}

/// The volumes carrying `uid`, oldest first.
pub(crate) async fn volumes_of(session: &Session, uid: &str) -> Result<Vec<Volume>> {
    let filter = json!({ UID_KEY: uid }).to_string();
    let mut found: Vec<Volume> = list(session, Some(&filter))
        .await?
        .into_iter()
        .filter(|v| v.metadata.get(UID_KEY).map(String::as_str) == Some(uid))
        .collect();
    found.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(found)
}

/// Every volume carrying a uid, across all projects.
pub(crate) async fn owned_volumes(session: &Session) -> Result<Vec<Volume>> {
    Ok(list(session, None)
        .await?
        .into_iter()
        .filter(|v| v.metadata.contains_key(UID_KEY))
        .collect())
}

/// Creates a volume in `scope`; returns its id.
pub(crate) async fn create(
    session: &Session,
    scope: &Scope,
    name: &str,
    size_gib: u64,
    zone: Option<&str>,
    metadata: &BTreeMap<&'static str, String>,
) -> Result<String> {
    let mut volume = json!({ "name": name, "size": size_gib, "metadata": metadata });
    if let Some(z) = zone {
        volume["availability_zone"] = json!(z);
    }
    #[derive(Deserialize)]
    struct Created {
        id: String,
    }
    #[derive(Deserialize)]
    struct Root {
        volume: Created,
    }
    let call = Call::new(Method::POST, Service::Volume, "/volumes", "create volume")
        .body(json!({ "volume": volume }));
    Ok(session
        .send(scope, &call)
        .await?
        .json::<Root>(&call.what)?
        .volume
        .id)
}

/// Deletes a volume; already gone is success.
pub(crate) async fn delete(session: &Session, id: &str) -> Result<()> {
    let call = Call::new(
        Method::DELETE,
        Service::Volume,
        format!("/volumes/{id}"),
        "delete volume",
    );
    match session.send(&Scope::Admin, &call).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(status: &str, attached: bool) -> Volume {
        Volume {
            id: "v1".into(),
            status: status.into(),
            metadata: [(UID_KEY.to_owned(), "u1".to_owned())].into(),
            attachments: if attached {
                vec![Attachment {
                    server_id: "s1".into(),
                    device: Some("/dev/vdb".into()),
                }]
            } else {
                vec![]
            },
            ..Volume::default()
        }
    }

    #[test]
    fn statuses_map_to_ready_and_failed() {
        assert!(volume_resource(&vol("available", false)).ready);
        let in_use = volume_resource(&vol("in-use", true));
        assert!(in_use.ready);
        assert_eq!(in_use.message, "attached to server s1");
        assert_eq!(in_use.addresses, vec!["/dev/vdb"]);
        for s in ["creating", "attaching", "detaching", "deleting"] {
            let r = volume_resource(&vol(s, false));
            assert!(!r.ready && !r.failed, "{s}");
        }
        for s in ["error", "error_deleting"] {
            let r = volume_resource(&vol(s, false));
            assert!(r.failed && !r.ready, "{s}");
            assert!(r.message.contains(s));
        }
        assert_eq!(
            volume_resource(&vol("available", false))
                .owner_uid
                .as_deref(),
            Some("u1")
        );
    }
}

/// One storage pool as Cinder's scheduler reports it (admin only).
#[derive(Debug, Clone, Deserialize)]
pub struct Pool {
    /// What the pool says of itself.
    pub capabilities: PoolCapabilities,
}

/// The sizes a pool reports, in GiB. Cinder sends numbers, numeric
/// strings, or `infinite` and `unknown` for backends that cannot tell.
#[derive(Debug, Clone, Deserialize)]
pub struct PoolCapabilities {
    /// The pool's size.
    #[serde(default)]
    pub total_capacity_gb: serde_json::Value,
    /// Given to volumes so far.
    #[serde(default)]
    pub allocated_capacity_gb: serde_json::Value,
    /// Held back by the operator, in percent of the total.
    #[serde(default)]
    pub reserved_percentage: serde_json::Value,
}

/// A pool figure as a whole number of GiB; `None` for `infinite`,
/// `unknown` or anything else that is not a number.
fn gib(v: &serde_json::Value) -> Option<u64> {
    let f = match v {
        serde_json::Value::Number(n) => n.as_f64()?,
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    // Truncation is intended: a whole number of GiB, never more than there is.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    (f.is_finite() && f >= 0.0).then(|| f.floor() as u64)
}

/// Block storage inventory from Cinder's pools: the total, the operator's
/// reserve, what volumes were given, and the most one new volume can get
/// (the freest pool). `None` when there is no pool or any pool cannot say
/// its size, as thin or fake backends answer `infinite`: then nothing is
/// measured and the foundation's declared `volume_gib` capacity counts.
/// Volumes are never overcommitted here; an admin's `allocationRatios`
/// entry for `volume_gib` applies on top.
pub fn pool_inventory(pools: &[Pool]) -> Option<yunshu_core::model::InventoryRecord> {
    if pools.is_empty() {
        return None;
    }
    let (mut total, mut reserved, mut used, mut max_unit) = (0u64, 0u64, 0u64, 0u64);
    for p in pools {
        let c = &p.capabilities;
        let size = gib(&c.total_capacity_gb)?;
        let held = size.saturating_mul(gib(&c.reserved_percentage).unwrap_or(0).min(100)) / 100;
        let given = gib(&c.allocated_capacity_gb).unwrap_or(0);
        total += size;
        reserved += held;
        used += given;
        max_unit = max_unit.max(size.saturating_sub(held).saturating_sub(given));
    }
    Some(yunshu_core::model::InventoryRecord {
        total,
        reserved,
        allocation_ratio: 1.0,
        used,
        max_unit,
    })
}

/// Every pool of the cloud's Cinder, with its capabilities.
pub(crate) async fn pools(session: &Session) -> Result<Vec<Pool>> {
    #[derive(Deserialize)]
    struct Pools {
        #[serde(default)]
        pools: Vec<Pool>,
    }
    let call = Call::new(
        Method::GET,
        Service::Volume,
        "/scheduler-stats/get_pools",
        "list storage pools",
    )
    .query("detail", "true");
    let body: Pools = session.send(&Scope::Admin, &call).await?.json(&call.what)?;
    Ok(body.pools)
}

#[cfg(test)]
mod pool_tests {
    use super::*;

    fn pools(json: serde_json::Value) -> Vec<Pool> {
        serde_json::from_value(json).expect("pools")
    }

    #[test]
    fn pools_add_up_and_the_freest_bounds_one_volume() {
        let p = pools(json!([
            { "capabilities": { "total_capacity_gb": 1000, "allocated_capacity_gb": 300, "reserved_percentage": 10 } },
            { "capabilities": { "total_capacity_gb": "500.7", "allocated_capacity_gb": "0", "reserved_percentage": 0 } },
        ]));
        let r = pool_inventory(&p).expect("measured");
        assert_eq!((r.total, r.reserved, r.used), (1500, 100, 300));
        assert_eq!(
            r.max_unit, 600,
            "the first pool: 1000 - 100 reserved - 300 given"
        );
        assert_eq!(r.capacity(), 1400);
    }

    #[test]
    fn a_pool_that_cannot_say_its_size_measures_nothing() {
        for total in [json!("infinite"), json!("unknown"), json!(null)] {
            let p = pools(json!([
                { "capabilities": { "total_capacity_gb": 1000 } },
                { "capabilities": { "total_capacity_gb": total } },
            ]));
            assert!(pool_inventory(&p).is_none(), "{p:?}");
        }
        assert!(pool_inventory(&[]).is_none());
    }
}
