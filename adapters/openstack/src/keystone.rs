//! Keystone administration for department tenants: project `yunshu-<dept>`,
//! user `yunshu-<dept>`, and role assignments.
//!
//! Every step looks up before it creates and treats 409 as "someone else just
//! created it" (it looks up again), so concurrent callers converge on one
//! project and one user. Role assignment is a `PUT`, idempotent by nature.
//!
//! The department user is created without a password: it is the identity
//! the department's own credentials (application credentials) hang off, not
//! a login for the adapter. The adapter itself acts in the project as its
//! admin user, which is given the admin role there so it can take a
//! project-scoped token (admin, because Nova lets only admins boot
//! zero-disk flavors); servers and volumes then belong to the department's
//! project, and Nova and Cinder quotas per project apply.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use yunshu_core::{Error, ErrorKind, Result};

use crate::session::{Call, Scope, Service, Session};

#[derive(Debug, Clone, Deserialize)]
struct Named {
    id: String,
}

/// The Keystone name of a department's project and user.
pub(crate) fn tenant_name(department: &str) -> String {
    format!("yunshu-{department}")
}

async fn find(
    session: &Session,
    collection: &str,
    name: &str,
    domain_id: &str,
) -> Result<Option<String>> {
    let call = Call::new(
        Method::GET,
        Service::Identity,
        format!("/{collection}"),
        &format!("find {collection}"),
    )
    .query("name", name)
    .query("domain_id", domain_id);
    let reply = session.send(&Scope::Admin, &call).await?;
    let v: serde_json::Value = reply.json(&call.what)?;
    let items: Vec<Named> = serde_json::from_value(v.get(collection).cloned().unwrap_or_default())
        .map_err(|e| Error::internal(format!("{}: unexpected answer: {e}", call.what)))?;
    Ok(items.into_iter().next().map(|n| n.id))
}

async fn find_or_create(
    session: &Session,
    collection: &str,
    singular: &str,
    name: &str,
    body: serde_json::Value,
) -> Result<String> {
    let domain_id = session.config().domain_id.clone();
    if let Some(id) = find(session, collection, name, &domain_id).await? {
        return Ok(id);
    }
    let call = Call::new(
        Method::POST,
        Service::Identity,
        format!("/{collection}"),
        &format!("create {singular} `{name}`"),
    )
    .body(json!({ singular: body }));
    match session.send(&Scope::Admin, &call).await {
        Ok(reply) => {
            let v: serde_json::Value = reply.json(&call.what)?;
            let n: Named = serde_json::from_value(v.get(singular).cloned().unwrap_or_default())
                .map_err(|e| Error::internal(format!("{}: unexpected answer: {e}", call.what)))?;
            Ok(n.id)
        }
        Err(e) if e.kind() == ErrorKind::Conflict => find(session, collection, name, &domain_id)
            .await?
            .ok_or_else(|| Error::Conflict {
                message: format!(
                    "keystone: {singular} `{name}` conflicted on create but cannot be found"
                ),
            }),
        Err(e) => Err(e),
    }
}

/// The id of the role named `name` (roles are global; no domain filter).
pub(crate) async fn role_id(session: &Session, name: &str, setting: &str) -> Result<String> {
    let call = Call::new(Method::GET, Service::Identity, "/roles", "find role").query("name", name);
    #[derive(Deserialize)]
    struct Roles {
        roles: Vec<Named>,
    }
    let roles: Roles = session.send(&Scope::Admin, &call).await?.json(&call.what)?;
    roles.roles.into_iter().next().map(|r| r.id).ok_or_else(|| {
        Error::invalid(
            format!("spec.settings.{setting}"),
            format!("role `{name}` does not exist on this cloud"),
        )
    })
}

/// Ensures the department's project and user exist, that the user holds
/// `member_role_id` and `admin_user_id` holds `admin_role_id` on the project.
/// Returns `(project id, user id)`.
pub(crate) async fn ensure(
    session: &Session,
    department: &str,
    member_role_id: &str,
    admin_role_id: &str,
    admin_user_id: &str,
) -> Result<(String, String)> {
    let name = tenant_name(department);
    let domain_id = session.config().domain_id.clone();
    let project = find_or_create(
        session,
        "projects",
        "project",
        &name,
        json!({
            "name": name, "domain_id": domain_id, "enabled": true,
            "description": format!("Yunshu department {department}"),
        }),
    )
    .await?;
    let user = find_or_create(
        session,
        "users",
        "user",
        &name,
        json!({
            "name": name, "domain_id": domain_id, "enabled": true, "default_project_id": project,
            "description": format!("Yunshu department {department}"),
        }),
    )
    .await?;
    for (uid, role_id) in [
        (user.as_str(), member_role_id),
        (admin_user_id, admin_role_id),
    ] {
        let call = Call::new(
            Method::PUT,
            Service::Identity,
            format!("/projects/{project}/users/{uid}/roles/{role_id}"),
            "assign role",
        );
        session.send(&Scope::Admin, &call).await?;
    }
    Ok((project, user))
}
