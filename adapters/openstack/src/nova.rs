//! Nova: servers, flavors and volume attachments, plus the pure rules that
//! turn a server into a [`CloudResource`] and pick a flavor.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use yunshu_core::{Error, ErrorKind, Result, adapter::CloudResource};

use crate::session::{Call, Scope, Service, Session};

/// Metadata key holding the owner uid (the idempotency key and ownership tag).
pub const UID_KEY: &str = "yunshu-uid";
/// Metadata key holding the owner's department.
pub const DEPARTMENT_KEY: &str = "yunshu-department";
/// Metadata key holding the owner's object name.
pub const NAME_KEY: &str = "yunshu-name";
/// The server tag every Yunshu server carries, for cheap listing.
pub const TAG: &str = "yunshu";

/// The fields of a Nova server the adapter reads (microversion 2.79).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Server {
    /// Its id.
    pub id: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// ACTIVE, BUILD, ERROR, SHUTOFF, VERIFY_RESIZE, …
    #[serde(default)]
    pub status: String,
    /// What Nova is doing to it (`deleting`, `powering-off`, …).
    #[serde(rename = "OS-EXT-STS:task_state", default)]
    pub task_state: Option<String>,
    /// Its metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Addresses per network.
    #[serde(default)]
    pub addresses: BTreeMap<String, Vec<Address>>,
    /// Why it failed, when it did.
    #[serde(default)]
    pub fault: Option<Fault>,
    /// Its flavor, embedded since microversion 2.47.
    #[serde(default)]
    pub flavor: Option<EmbeddedFlavor>,
    /// Its project.
    #[serde(default)]
    pub tenant_id: String,
    /// When it was created (RFC 3339).
    #[serde(default)]
    pub created: String,
}

/// One address of a server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Address {
    /// The IP address.
    pub addr: String,
}

/// A server's fault.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Fault {
    /// Nova's message.
    #[serde(default)]
    pub message: String,
}

/// The flavor embedded in a server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct EmbeddedFlavor {
    /// vCPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub ram: u64,
    /// Root disk in GiB.
    pub disk: u64,
}

/// How Yunshu sees a server. Pure: `ready` on ACTIVE, `failed` on ERROR with
/// the fault as message, status `DELETING` while Nova deletes it.
pub fn server_resource(s: &Server) -> CloudResource {
    let deleting = s.task_state.as_deref() == Some("deleting");
    let status = if deleting {
        "DELETING".to_owned()
    } else {
        s.status.clone()
    };
    let failed = !deleting && s.status == "ERROR";
    CloudResource {
        id: s.id.clone(),
        owner_uid: s.metadata.get(UID_KEY).cloned(),
        ready: !deleting && s.status == "ACTIVE",
        failed,
        addresses: s
            .addresses
            .values()
            .flatten()
            .map(|a| a.addr.clone())
            .collect(),
        message: if failed {
            s.fault
                .as_ref()
                .map(|f| f.message.clone())
                .unwrap_or_else(|| "Nova put the server in ERROR".to_owned())
        } else {
            s.task_state.clone().unwrap_or_default()
        },
        status,
        bytes_used: None,
        objects_used: None,
    }
}

/// A flavor as Nova lists it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Flavor {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// vCPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub ram: u64,
    /// Root disk in GiB.
    pub disk: u64,
    /// Ephemeral disk in GiB.
    #[serde(rename = "OS-FLV-EXT-DATA:ephemeral", default)]
    pub ephemeral: u64,
    /// Swap in MiB; older microversions send `""` for none.
    #[serde(default)]
    pub swap: Value,
    /// Disabled flavors cannot boot.
    #[serde(rename = "OS-FLV-DISABLED:disabled", default)]
    pub disabled: bool,
}

/// The name of the flavor the adapter creates for a size.
pub fn flavor_name(vcpu: u32, memory_mib: u64, disk_gib: u64) -> String {
    format!("ys-{vcpu}c-{memory_mib}m-{disk_gib}g")
}

/// An enabled flavor of exactly this size with no swap or ephemeral disk,
/// the first by name. Pure.
pub fn pick_flavor(
    flavors: &[Flavor],
    vcpu: u32,
    memory_mib: u64,
    disk_gib: u64,
) -> Option<&Flavor> {
    let no_swap = |v: &Value| v.as_u64().unwrap_or(0) == 0;
    flavors
        .iter()
        .filter(|f| {
            !f.disabled
                && f.vcpus == vcpu
                && f.ram == memory_mib
                && f.disk == disk_gib
                && f.ephemeral == 0
                && no_swap(&f.swap)
        })
        .min_by(|a, b| a.name.cmp(&b.name))
}

/// `^<name>$` with regex metacharacters escaped, for Nova's name filter.
pub fn exact_name_regex(name: &str) -> String {
    let mut out = String::from("^");
    for c in name.chars() {
        if ".^$*+?()[]{}|\\".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('$');
    out
}

async fn list_servers(session: &Session, filters: &[(&str, &str)]) -> Result<Vec<Server>> {
    #[derive(Deserialize)]
    struct Page {
        servers: Vec<Server>,
    }
    const LIMIT: usize = 500;
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..200 {
        let mut call = Call::new(
            Method::GET,
            Service::Compute,
            "/servers/detail",
            "list servers",
        )
        .query("all_tenants", "1")
        .query("limit", LIMIT.to_string());
        for (k, v) in filters {
            call = call.query(k, *v);
        }
        if let Some(m) = &marker {
            call = call.query("marker", m.clone());
        }
        let page: Page = session.send(&Scope::Admin, &call).await?.json(&call.what)?;
        let n = page.servers.len();
        marker = page.servers.last().map(|s| s.id.clone());
        out.extend(page.servers);
        if n < LIMIT {
            break;
        }
    }
    Ok(out)
}

/// The servers carrying `uid`, oldest first (more than one only after a
/// lost creation race, which the caller repairs).
pub(crate) async fn servers_of(
    session: &Session,
    server_name: &str,
    uid: &str,
) -> Result<Vec<Server>> {
    let regex = exact_name_regex(server_name);
    let mut found: Vec<Server> = list_servers(session, &[("name", regex.as_str())])
        .await?
        .into_iter()
        .filter(|s| s.metadata.get(UID_KEY).map(String::as_str) == Some(uid))
        .collect();
    found.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
    Ok(found)
}

/// Every server tagged `yunshu` that carries a uid, across all projects.
pub(crate) async fn owned_servers(session: &Session) -> Result<Vec<Server>> {
    Ok(list_servers(session, &[("tags", TAG)])
        .await?
        .into_iter()
        .filter(|s| s.metadata.contains_key(UID_KEY))
        .collect())
}

/// One server by id.
pub(crate) async fn server(session: &Session, id: &str) -> Result<Server> {
    #[derive(Deserialize)]
    struct Root {
        server: Server,
    }
    let call = Call::new(
        Method::GET,
        Service::Compute,
        format!("/servers/{id}"),
        "show server",
    );
    Ok(session
        .send(&Scope::Admin, &call)
        .await?
        .json::<Root>(&call.what)?
        .server)
}

/// What to boot.
#[derive(Debug)]
pub(crate) struct Boot<'a> {
    pub(crate) name: &'a str,
    pub(crate) flavor_id: &'a str,
    pub(crate) image_id: &'a str,
    pub(crate) network_id: &'a str,
    pub(crate) zone: Option<&'a str>,
    pub(crate) metadata: BTreeMap<&'static str, String>,
}

/// Boots a server in `scope`; returns its id.
pub(crate) async fn create_server(
    session: &Session,
    scope: &Scope,
    boot: &Boot<'_>,
) -> Result<String> {
    let mut server = json!({
        "name": boot.name,
        "flavorRef": boot.flavor_id,
        "imageRef": boot.image_id,
        "networks": [{ "uuid": boot.network_id }],
        "metadata": boot.metadata,
        "tags": [TAG],
    });
    if let Some(zone) = boot.zone {
        server["availability_zone"] = json!(zone);
    }
    #[derive(Deserialize)]
    struct Created {
        id: String,
    }
    #[derive(Deserialize)]
    struct Root {
        server: Created,
    }
    let call = Call::new(Method::POST, Service::Compute, "/servers", "create server")
        .body(json!({ "server": server }));
    // The answer also holds adminPass; only the id is read, nothing is logged.
    Ok(session
        .send(scope, &call)
        .await?
        .json::<Root>(&call.what)?
        .server
        .id)
}

/// Deletes a server; already gone is success.
pub(crate) async fn delete_server(session: &Session, id: &str) -> Result<()> {
    let call = Call::new(
        Method::DELETE,
        Service::Compute,
        format!("/servers/{id}"),
        "delete server",
    );
    match session.send(&Scope::Admin, &call).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Posts a server action (`{"os-start": null}`, `{"resize": …}`, …).
pub(crate) async fn action(session: &Session, id: &str, what: &str, body: Value) -> Result<()> {
    let call = Call::new(
        Method::POST,
        Service::Compute,
        format!("/servers/{id}/action"),
        what,
    )
    .body(body);
    session.send(&Scope::Admin, &call).await.map(|_| ())
}

/// Finds an enabled flavor of exactly this size, or creates
/// `ys-<vcpu>c-<mem>m-<disk>g` (a racing creator's 409 is tolerated).
pub(crate) async fn ensure_flavor(
    session: &Session,
    vcpu: u32,
    memory_mib: u64,
    disk_gib: u64,
) -> Result<String> {
    #[derive(Deserialize)]
    struct Flavors {
        flavors: Vec<Flavor>,
    }
    let list = || async {
        let call = Call::new(
            Method::GET,
            Service::Compute,
            "/flavors/detail",
            "list flavors",
        )
        .query("is_public", "None");
        let f: Flavors = session.send(&Scope::Admin, &call).await?.json(&call.what)?;
        Ok::<_, Error>(pick_flavor(&f.flavors, vcpu, memory_mib, disk_gib).map(|f| f.id.clone()))
    };
    if let Some(id) = list().await? {
        return Ok(id);
    }
    let name = flavor_name(vcpu, memory_mib, disk_gib);
    let call = Call::new(Method::POST, Service::Compute, "/flavors", &format!("create flavor `{name}`")).body(json!({
        "flavor": { "name": name, "vcpus": vcpu, "ram": memory_mib, "disk": disk_gib, "os-flavor-access:is_public": true }
    }));
    #[derive(Deserialize)]
    struct Root {
        flavor: Flavor,
    }
    match session.send(&Scope::Admin, &call).await {
        Ok(r) => Ok(r.json::<Root>(&call.what)?.flavor.id),
        Err(e) if e.kind() == ErrorKind::Conflict => list().await?.ok_or_else(|| Error::Conflict {
            message: format!("nova: flavor `{name}` exists with another size; rename it"),
        }),
        Err(e) => Err(e),
    }
}

/// Attaches a volume to a server, acting in the server's `scope`.
pub(crate) async fn attach(
    session: &Session,
    scope: &Scope,
    server_id: &str,
    volume_id: &str,
) -> Result<()> {
    let call = Call::new(
        Method::POST,
        Service::Compute,
        format!("/servers/{server_id}/os-volume_attachments"),
        "attach volume",
    )
    .body(json!({ "volumeAttachment": { "volumeId": volume_id } }));
    session.send(scope, &call).await.map(|_| ())
}

/// Detaches a volume from a server; not attached (404) is success.
pub(crate) async fn detach(
    session: &Session,
    scope: &Scope,
    server_id: &str,
    volume_id: &str,
) -> Result<()> {
    let call = Call::new(
        Method::DELETE,
        Service::Compute,
        format!("/servers/{server_id}/os-volume_attachments/{volume_id}"),
        "detach volume",
    );
    match session.send(scope, &call).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status: &str, task: Option<&str>) -> Server {
        serde_json::from_value(json!({
            "id": "s1", "name": "hr-web", "status": status, "OS-EXT-STS:task_state": task,
            "metadata": { "yunshu-uid": "u1" },
            "addresses": { "ys-net": [{ "addr": "10.20.0.5", "version": 4 }] },
            "fault": { "message": "No valid host was found.", "code": 500 },
            "flavor": { "vcpus": 2, "ram": 4096, "disk": 40, "original_name": "m1.medium" },
            "created": "2024-01-01T00:00:00Z"
        }))
        .expect("server")
    }

    #[test]
    fn active_is_ready_with_addresses() {
        let r = server_resource(&server("ACTIVE", None));
        assert!(r.ready && !r.failed);
        assert_eq!(r.status, "ACTIVE");
        assert_eq!(r.owner_uid.as_deref(), Some("u1"));
        assert_eq!(r.addresses, vec!["10.20.0.5"]);
    }

    #[test]
    fn error_is_failed_with_fault() {
        let r = server_resource(&server("ERROR", None));
        assert!(r.failed && !r.ready);
        assert_eq!(r.message, "No valid host was found.");
    }

    #[test]
    fn deleting_is_neither_ready_nor_failed() {
        for st in ["ACTIVE", "ERROR"] {
            let r = server_resource(&server(st, Some("deleting")));
            assert_eq!(r.status, "DELETING");
            assert!(!r.ready && !r.failed);
        }
        let r = server_resource(&server("BUILD", Some("spawning")));
        assert!(!r.ready && !r.failed);
        assert_eq!(r.message, "spawning");
    }

    fn flavor(id: &str, name: &str, vcpus: u32, ram: u64, disk: u64, swap: Value) -> Flavor {
        Flavor {
            id: id.into(),
            name: name.into(),
            vcpus,
            ram,
            disk,
            ephemeral: 0,
            swap,
            disabled: false,
        }
    }

    #[test]
    fn flavor_must_match_exactly() {
        let mut disabled = flavor("d", "a-disabled", 2, 4096, 40, json!(""));
        disabled.disabled = true;
        let fs = [
            flavor("m", "m1.medium", 2, 4096, 40, json!("")),
            flavor("s", "swappy", 2, 4096, 40, json!(512)),
            flavor("b", "bigger", 2, 4096, 80, json!(0)),
            disabled,
        ];
        assert_eq!(
            pick_flavor(&fs, 2, 4096, 40).map(|f| f.id.as_str()),
            Some("m")
        );
        assert_eq!(pick_flavor(&fs, 2, 4096, 20), None);
        assert_eq!(pick_flavor(&fs, 1, 4096, 40), None);
        assert_eq!(flavor_name(2, 4096, 40), "ys-2c-4096m-40g");
    }

    #[test]
    fn name_regex_is_anchored_and_escaped() {
        assert_eq!(exact_name_regex("hr-web.1"), r"^hr-web\.1$");
        assert_eq!(exact_name_regex("a(b)"), r"^a\(b\)$");
    }
}
