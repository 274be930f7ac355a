//! Authorization: who may do what. A department sees and changes only its
//! own resources — another department's look like they do not exist —
//! viewers cannot mutate, and only admins use the admin service.

use tonic::{Request, Status};
use yunshu_core::principal::Principal;

/// The authenticated caller, put into the request by the auth layer.
pub fn principal<T>(request: &Request<T>) -> Result<Principal, Status> {
    request.extensions().get::<Principal>().cloned().ok_or_else(|| {
        Status::unauthenticated("no credentials: present a client certificate, an OIDC bearer token or an API token")
    })
}

/// May read `department`'s resources; otherwise the department "does not exist".
pub fn read(p: &Principal, department: &str) -> Result<(), Status> {
    if p.can_read(department) {
        Ok(())
    } else {
        Err(Status::not_found(format!(
            "department {department} not found"
        )))
    }
}

/// May change `department`'s resources.
pub fn write(p: &Principal, department: &str) -> Result<(), Status> {
    read(p, department)?;
    if p.can_write(department) {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "{} is a viewer of department {department} and may not change its resources",
            p.subject
        )))
    }
}

/// May use the admin service.
pub fn admin(p: &Principal) -> Result<(), Status> {
    if p.is_admin() {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "{} is not an admin; the admin service is for admins",
            p.subject
        )))
    }
}
