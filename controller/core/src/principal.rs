//! Who is calling: the authenticated principal every request carries, and
//! what it may do.

use crate::model::Role;

/// An authenticated caller, mapped to a department and a role.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    /// The department the caller acts for.
    pub department: String,
    /// The caller's subject (certificate CN, OIDC `sub`, API token id).
    pub subject: String,
    /// What the caller may do.
    pub role: Role,
}

impl Principal {
    /// Whether the caller may read `department`'s resources. Admins may read
    /// every department's.
    pub fn can_read(&self, department: &str) -> bool {
        self.role == Role::Admin || self.department == department
    }

    /// Whether the caller may change `department`'s resources.
    pub fn can_write(&self, department: &str) -> bool {
        self.can_read(department) && self.role >= Role::Operator
    }

    /// Whether the caller may use the admin API.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// Asks again whether the credentials a long-lived call (a watch) was
/// opened with still let the caller in as the same principal: a revoked
/// API token, an expired JWT or an identity removed from its department
/// ends the call. The auth layer puts one in a watch request's extensions
/// beside the [`Principal`].
#[derive(Clone)]
pub struct Recheck {
    every: std::time::Duration,
    check: std::sync::Arc<dyn Fn() -> futures::future::BoxFuture<'static, bool> + Send + Sync>,
}

impl Recheck {
    /// Asks `check` every `every`.
    pub fn new(
        every: std::time::Duration,
        check: impl Fn() -> futures::future::BoxFuture<'static, bool> + Send + Sync + 'static,
    ) -> Self {
        Self {
            every,
            check: std::sync::Arc::new(check),
        }
    }

    /// How often to ask.
    pub fn every(&self) -> std::time::Duration {
        self.every
    }

    /// Whether the credentials still hold.
    pub async fn still_valid(&self) -> bool {
        (self.check)().await
    }
}

impl std::fmt::Debug for Recheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recheck")
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(department: &str, role: Role) -> Principal {
        Principal {
            department: department.into(),
            subject: "s".into(),
            role,
        }
    }

    #[test]
    fn roles_and_departments() {
        assert!(p("health", Role::Viewer).can_read("health"));
        assert!(!p("health", Role::Viewer).can_write("health"));
        assert!(p("health", Role::Operator).can_write("health"));
        assert!(!p("health", Role::Operator).can_read("transport"));
        assert!(p("platform", Role::Admin).can_write("transport"));
        assert!(!p("health", Role::Operator).is_admin());
    }
}
