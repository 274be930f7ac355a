use yunshu_core::model::DepartmentSpec;

use super::*;
use crate::token::mint_api_token_with_id;

fn department(name: &str, identities: Vec<Identity>) -> Department {
    Department::new(
        None,
        name,
        DepartmentSpec {
            identities,
            ..DepartmentSpec::default()
        },
    )
}

fn subject(s: &str, role: Role) -> Identity {
    Identity::OidcSubject {
        subject: s.into(),
        role,
    }
}

fn group(g: &str, role: Role) -> Identity {
    Identity::OidcGroup {
        group: g.into(),
        role,
    }
}

fn cert(cn: &str, role: Role) -> Identity {
    Identity::CertificateSubject {
        subject: cn.into(),
        role,
    }
}

fn member(department: &str, role: Role) -> Result<Membership, RejectReason> {
    Ok(Membership {
        department: department.into(),
        role,
    })
}

fn groups(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn certificate_subjects_map_to_their_department() {
    let idx = IdentityIndex::from_departments(&[
        department(
            "health",
            vec![
                cert("ci.health", Role::Operator),
                cert("ci.health", Role::Viewer),
            ],
        ),
        department("water", vec![cert("ops", Role::Admin)]),
    ]);
    assert_eq!(
        idx.resolve_certificate("ci.health", None),
        member("health", Role::Operator)
    );
    assert_eq!(
        idx.resolve_certificate("ops", None),
        member("water", Role::Admin)
    );
    assert_eq!(
        idx.resolve_certificate("OPS", None),
        Err(RejectReason::NoDepartment)
    );
    // An admin may act in every department, so may name any (and stays of
    // its own); no one else may name a department they hold no grant in.
    assert_eq!(
        idx.resolve_certificate("ops", Some("health")),
        member("water", Role::Admin)
    );
    assert_eq!(
        idx.resolve_certificate("ci.health", Some("water")),
        Err(RejectReason::NoDepartment)
    );
}

#[test]
fn subject_grant_beats_group_grant_in_the_same_department() {
    let idx = IdentityIndex::from_departments(&[department(
        "health",
        vec![
            group("health-admins", Role::Admin),
            subject("alice", Role::Viewer),
        ],
    )]);
    assert_eq!(
        idx.resolve_oidc("alice", &groups(&["health-admins"]), None),
        member("health", Role::Viewer)
    );
    assert_eq!(
        idx.resolve_oidc("bob", &groups(&["health-admins"]), None),
        member("health", Role::Admin)
    );
}

#[test]
fn highest_group_role_wins_within_a_department() {
    let idx = IdentityIndex::from_departments(&[department(
        "health",
        vec![group("readers", Role::Viewer), group("ops", Role::Operator)],
    )]);
    assert_eq!(
        idx.resolve_oidc("carol", &groups(&["readers", "ops"]), None),
        member("health", Role::Operator)
    );
}

#[test]
fn across_departments_subject_is_preferred_then_ambiguity_is_refused() {
    let idx = IdentityIndex::from_departments(&[
        department("health", vec![subject("alice", Role::Operator)]),
        department("water", vec![group("city-ops", Role::Admin)]),
        department("transport", vec![group("city-ops", Role::Viewer)]),
    ]);
    // The subject grant is the most specific: health, without a header.
    assert_eq!(
        idx.resolve_oidc("alice", &groups(&["city-ops"]), None),
        member("health", Role::Operator)
    );
    // Naming a department picks a group grant there.
    assert_eq!(
        idx.resolve_oidc("alice", &groups(&["city-ops"]), Some("water")),
        member("water", Role::Admin)
    );
    // Two departments by group and no header: ambiguous.
    assert_eq!(
        idx.resolve_oidc("bob", &groups(&["city-ops"]), None),
        Err(RejectReason::AmbiguousDepartment)
    );
    // An admin (bob, by city-ops in water) names any department: one it
    // holds a grant in gives that grant; another, its admin grant.
    assert_eq!(
        idx.resolve_oidc("bob", &groups(&["city-ops"]), Some("transport")),
        member("transport", Role::Viewer)
    );
    assert_eq!(
        idx.resolve_oidc("bob", &groups(&["city-ops"]), Some("health")),
        member("water", Role::Admin)
    );
    assert_eq!(
        idx.resolve_oidc("nobody", &[], None),
        Err(RejectReason::NoDepartment)
    );
}

#[test]
fn api_tokens_check_secret_then_revocation_then_department() {
    let good = mint_api_token_with_id("ci").expect("mint");
    let revoked = mint_api_token_with_id("old").expect("mint");
    let mut revoked_identity = revoked.identity(Role::Operator);
    if let Identity::ApiToken { revoked, .. } = &mut revoked_identity {
        *revoked = true;
    }
    let idx = IdentityIndex::from_departments(&[department(
        "health",
        vec![good.identity(Role::Operator), revoked_identity],
    )]);
    assert_eq!(
        idx.resolve_api_token(good.token.expose(), None),
        member("health", Role::Operator)
    );
    assert_eq!(
        idx.resolve_api_token(good.token.expose(), Some("water")),
        Err(RejectReason::NoDepartment)
    );
    // An admin's token may name any department.
    let admin = mint_api_token_with_id("root").expect("mint");
    let platform = IdentityIndex::from_departments(&[department(
        "platform",
        vec![admin.identity(Role::Admin)],
    )]);
    assert_eq!(
        platform.resolve_api_token(admin.token.expose(), Some("water")),
        member("platform", Role::Admin)
    );
    assert_eq!(
        idx.resolve_api_token(revoked.token.expose(), None),
        Err(RejectReason::RevokedApiToken)
    );
    // A wrong secret for a revoked id does not learn that it is revoked.
    assert_eq!(
        idx.resolve_api_token("ysk_old_0000", None),
        Err(RejectReason::InvalidApiToken)
    );
    assert_eq!(
        idx.resolve_api_token("ysk_ci_0000", None),
        Err(RejectReason::InvalidApiToken)
    );
    assert_eq!(
        idx.resolve_api_token("ysk_nope_0000", None),
        Err(RejectReason::InvalidApiToken)
    );
    assert_eq!(
        idx.resolve_api_token("ysk_", None),
        Err(RejectReason::MalformedCredentials)
    );
}

#[test]
fn stored_hash_may_be_upper_case_and_bad_hashes_are_skipped() {
    let t = mint_api_token_with_id("ci").expect("mint");
    let idx = IdentityIndex::from_departments(&[department(
        "health",
        vec![
            Identity::ApiToken {
                id: "ci".into(),
                sha256: t.sha256.to_uppercase(),
                role: Role::Viewer,
                revoked: false,
            },
            Identity::ApiToken {
                id: "bad".into(),
                sha256: "xyz".into(),
                role: Role::Admin,
                revoked: false,
            },
        ],
    )]);
    assert_eq!(
        idx.resolve_api_token(t.token.expose(), None),
        member("health", Role::Viewer)
    );
}

#[test]
fn updates_are_seen_by_every_clone() {
    let idx = IdentityIndex::new();
    let seen_by_layer = idx.clone();
    assert_eq!(
        seen_by_layer.resolve_certificate("ci", None),
        Err(RejectReason::NoDepartment)
    );
    idx.upsert(&department("health", vec![cert("ci", Role::Viewer)]));
    assert_eq!(
        seen_by_layer.resolve_certificate("ci", None),
        member("health", Role::Viewer)
    );
    idx.upsert(&department("health", vec![cert("ci", Role::Admin)]));
    assert_eq!(
        seen_by_layer.resolve_certificate("ci", None),
        member("health", Role::Admin)
    );
    assert!(idx.remove("health"));
    assert!(!idx.remove("health"));
    assert_eq!(
        seen_by_layer.resolve_certificate("ci", None),
        Err(RejectReason::NoDepartment)
    );
    idx.replace_all(&[department("water", vec![]), department("health", vec![])]);
    assert_eq!(
        seen_by_layer.departments(),
        vec!["health".to_owned(), "water".to_owned()]
    );
}
