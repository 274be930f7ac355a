//! Policy documents: the bucket policy that grants a bucket to its
//! department's user (and, on RGW, to each issued user until it expires),
//! and the IAM inline policy that confines a user to one bucket.
//!
//! Statements Yunshu writes carry a `Sid` starting with `Yunshu`; when the
//! bucket policy is rewritten, issued-user statements already there are kept
//! so re-running a create never drops live credentials.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

const VERSION: &str = "2012-10-17";
const DEPARTMENT_SID: &str = "YunshuDepartment";
const ISSUED_SID: &str = "YunshuIssued";

fn resources(bucket: &str) -> Value {
    json!([
        format!("arn:aws:s3:::{bucket}"),
        format!("arn:aws:s3:::{bucket}/*")
    ])
}

fn principal(user: &str) -> String {
    format!("arn:aws:iam:::user/{user}")
}

/// The bucket policy granting `bucket` to `department_user`, keeping the
/// issued-user statements of `existing` (the current policy, if any).
pub fn bucket_policy(bucket: &str, department_user: &str, existing: Option<&str>) -> String {
    let mut statements = vec![json!({
        "Sid": DEPARTMENT_SID,
        "Effect": "Allow",
        "Principal": {"AWS": [principal(department_user)]},
        "Action": ["s3:*"],
        "Resource": resources(bucket),
    })];
    statements.extend(issued_statements(existing));
    json!({"Version": VERSION, "Statement": statements}).to_string()
}

/// `existing` plus a statement granting `bucket` to `user` until `expires_at`
/// (the server refuses the user's requests after that time). Issued
/// statements that have expired are dropped, so a policy never collects
/// them even where a sweep missed one.
pub fn with_issued(existing: &str, bucket: &str, user: &str, expires_at: DateTime<Utc>) -> String {
    let mut doc = parse(existing);
    let now = Utc::now();
    statements_mut(&mut doc).retain(|s| !(is_issued(s) && expired(s, now)));
    let sid = format!(
        "{ISSUED_SID}{}",
        user.rsplit('.').next().unwrap_or_default()
    );
    let statement = json!({
        "Sid": sid.chars().filter(char::is_ascii_alphanumeric).collect::<String>(),
        "Effect": "Allow",
        "Principal": {"AWS": [principal(user)]},
        "Action": ["s3:*"],
        "Resource": resources(bucket),
        "Condition": {"DateLessThan": {"aws:CurrentTime": expires_at.to_rfc3339_opts(SecondsFormat::Secs, true)}},
    });
    statements_mut(&mut doc).push(statement);
    doc.to_string()
}

/// `existing` without the statements naming any of `users`; `None` if
/// there were none.
pub fn without_users(existing: &str, users: &[&str]) -> Option<String> {
    let mut doc = parse(existing);
    let arns: Vec<String> = users.iter().map(|u| principal(u)).collect();
    let statements = statements_mut(&mut doc);
    let before = statements.len();
    statements.retain(|s| !arns.iter().any(|arn| names_principal(s, arn)));
    (statements.len() != before).then(|| doc.to_string())
}

/// Whether a statement of `doc` names `user`.
pub fn names_user(doc: &str, user: &str) -> bool {
    let mut doc = parse(doc);
    let arn = principal(user);
    statements_mut(&mut doc)
        .iter()
        .any(|s| names_principal(s, &arn))
}

/// The IAM inline policy confining a user to `bucket`.
pub fn user_policy(bucket: &str) -> String {
    json!({
        "Version": VERSION,
        "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": resources(bucket)}],
    })
    .to_string()
}

fn issued_statements(existing: Option<&str>) -> Vec<Value> {
    let Some(existing) = existing else {
        return vec![];
    };
    let mut doc = parse(existing);
    std::mem::take(statements_mut(&mut doc))
        .into_iter()
        .filter(|s| is_issued(s) && !expired(s, Utc::now()))
        .collect()
}

/// Whether Yunshu wrote `statement` for an issued user.
fn is_issued(statement: &Value) -> bool {
    statement
        .get("Sid")
        .and_then(Value::as_str)
        .is_some_and(|sid| sid.starts_with(ISSUED_SID))
}

/// Whether an issued statement's time condition has passed; such
/// statements grant nothing any more and are dropped on rewrite.
fn expired(statement: &Value, now: DateTime<Utc>) -> bool {
    statement
        .pointer("/Condition/DateLessThan/aws:CurrentTime")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| t <= now)
}

fn parse(doc: &str) -> Value {
    match serde_json::from_str::<Value>(doc) {
        Ok(v) if v.is_object() => v,
        _ => json!({"Version": VERSION, "Statement": []}),
    }
}

fn statements_mut(doc: &mut Value) -> &mut Vec<Value> {
    let statement = &mut doc["Statement"];
    if !statement.is_array() {
        // A single statement may be written as an object.
        let single = statement.take();
        *statement = if single.is_object() {
            json!([single])
        } else {
            json!([])
        };
    }
    match statement {
        Value::Array(a) => a,
        _ => unreachable!("made an array above"),
    }
}

fn names_principal(statement: &Value, arn: &str) -> bool {
    match statement.get("Principal").and_then(|p| p.get("AWS")) {
        Some(Value::String(s)) => s == arn,
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(arn)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn department_policy_grants_one_user_one_bucket() {
        let p: Value = serde_json::from_str(&bucket_policy("b", "yunshu-a", None)).expect("json");
        let s = &p["Statement"][0];
        assert_eq!(s["Principal"]["AWS"][0], "arn:aws:iam:::user/yunshu-a");
        assert_eq!(s["Resource"], json!(["arn:aws:s3:::b", "arn:aws:s3:::b/*"]));
        assert_eq!(p["Statement"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn issued_statements_survive_a_rewrite_and_go_on_revoke() {
        let t = Utc.timestamp_opt(1_900_000_000, 0).single().expect("time");
        let base = bucket_policy("b", "yunshu-a", None);
        let issued = with_issued(&base, "b", "yunshu-a.abcdef.0123456789ab", t);
        let v: Value = serde_json::from_str(&issued).expect("json");
        let st = &v["Statement"][1];
        assert_eq!(st["Sid"], "YunshuIssued0123456789ab");
        assert_eq!(
            st["Condition"]["DateLessThan"]["aws:CurrentTime"],
            "2030-03-17T17:46:40Z"
        );

        let rewritten = bucket_policy("b", "yunshu-a", Some(&issued));
        let v: Value = serde_json::from_str(&rewritten).expect("json");
        assert_eq!(v["Statement"].as_array().map(Vec::len), Some(2));

        let revoked =
            without_users(&rewritten, &["yunshu-a.abcdef.0123456789ab"]).expect("changed");
        let v: Value = serde_json::from_str(&revoked).expect("json");
        assert_eq!(v["Statement"].as_array().map(Vec::len), Some(1));
        assert!(without_users(&revoked, &["yunshu-a.abcdef.0123456789ab"]).is_none());
    }

    #[test]
    fn expired_issued_statements_are_dropped_on_rewrite() {
        let past = Utc.timestamp_opt(1_000_000_000, 0).single().expect("time");
        let base = bucket_policy("b", "yunshu-a", None);
        let issued = with_issued(&base, "b", "yunshu-a.abcdef.0123456789ab", past);
        let v: Value =
            serde_json::from_str(&bucket_policy("b", "yunshu-a", Some(&issued))).expect("json");
        assert_eq!(v["Statement"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn issuing_drops_expired_statements_and_keeps_live_ones() {
        let past = Utc.timestamp_opt(1_000_000_000, 0).single().expect("time");
        let future = Utc.timestamp_opt(4_000_000_000, 0).single().expect("time");
        let base = bucket_policy("b", "yunshu-a", None);
        let doc = with_issued(&base, "b", "yunshu-a.abcdef.3b9aca000001", past);
        let doc = with_issued(&doc, "b", "yunshu-a.abcdef.ee6b28000002", future);
        let doc = with_issued(&doc, "b", "yunshu-a.abcdef.ee6b28000003", future);
        let v: Value = serde_json::from_str(&doc).expect("json");
        let sids: Vec<&str> = v["Statement"]
            .as_array()
            .expect("statements")
            .iter()
            .filter_map(|s| s["Sid"].as_str())
            .collect();
        assert_eq!(
            sids,
            [
                "YunshuDepartment",
                "YunshuIssuedee6b28000002",
                "YunshuIssuedee6b28000003"
            ]
        );
        assert!(names_user(&doc, "yunshu-a.abcdef.ee6b28000002"));
        assert!(!names_user(&doc, "yunshu-a.abcdef.3b9aca000001"));
        let two = without_users(
            &doc,
            &[
                "yunshu-a.abcdef.ee6b28000002",
                "yunshu-a.abcdef.ee6b28000003",
            ],
        )
        .expect("changed");
        let v: Value = serde_json::from_str(&two).expect("json");
        assert_eq!(v["Statement"].as_array().map(Vec::len), Some(1));
    }
}
