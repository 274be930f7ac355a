//! Helpers shared by the integration tests: certificates, JWTs, and
//! Department fixtures.

#![allow(dead_code)]

pub mod jwt;
pub mod pki;

use yunshu_core::model::{Department, DepartmentSpec, Identity, Role};

pub fn department(name: &str, identities: Vec<Identity>) -> Department {
    Department::new(
        None,
        name,
        DepartmentSpec {
            identities,
            ..DepartmentSpec::default()
        },
    )
}

pub fn cert_identity(cn: &str, role: Role) -> Identity {
    Identity::CertificateSubject {
        subject: cn.into(),
        role,
    }
}

pub fn subject_identity(sub: &str, role: Role) -> Identity {
    Identity::OidcSubject {
        subject: sub.into(),
        role,
    }
}

pub fn group_identity(group: &str, role: Role) -> Identity {
    Identity::OidcGroup {
        group: group.into(),
        role,
    }
}
