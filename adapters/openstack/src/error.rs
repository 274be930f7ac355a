//! How OpenStack answers turn into Yunshu errors.
//!
//! One pure function, [`map_status`], decides the [`ErrorKind`](yunshu_core::ErrorKind) of every
//! non-2xx answer from every service; [`transport`] does the same for answers
//! that never came. Both build messages from the operation (`what`), the
//! status and the service's own message, never from the request, so no
//! password or token can end up in an error.
//!
//! Rules, in order:
//!
//! | answer | kind |
//! |---|---|
//! | 401 | `Unauthorized` (the session re-authenticates once before this) |
//! | 403 or 413 whose message says a quota is exceeded | `QuotaExceeded`, with the violation parsed from Nova's or Cinder's message where it names a class Yunshu knows |
//! | other 403 | `PermissionDenied` |
//! | 404, 410 | `NotFound` |
//! | 409 | `Conflict` |
//! | 413, 429 | `Throttled`, `retry_after` from `Retry-After` (seconds or an HTTP date) |
//! | 5xx | `Unavailable` |
//! | other 4xx (400, 422, …) | `Invalid`, the field being the operation |
//!
//! Cinder answers an over-quota volume with `413 overLimit` *and*
//! `Retry-After: 0`, so the quota test comes before the throttling one.

use std::time::{Duration, SystemTime};

use yunshu_core::{
    Error,
    error::{FieldViolation, QuotaViolation},
    resources::ResourceClass,
};

/// The longest service message kept in an error, in characters.
const MAX_MESSAGE: usize = 300;

/// Maps a non-2xx answer to a Yunshu error.
///
/// `what` names the operation ("nova: create server"), `retry_after` is the
/// raw `Retry-After` header if any, `body` the answer's body and `now` the
/// time to count an HTTP-date `Retry-After` from.
pub fn map_status(
    status: u16,
    retry_after: Option<&str>,
    body: &str,
    what: &str,
    now: SystemTime,
) -> Error {
    let message = service_message(body);
    let said = if message.is_empty() {
        format!("{what}: HTTP {status}")
    } else {
        format!("{what}: HTTP {status}: {message}")
    };
    match status {
        401 => Error::Unauthorized {
            message: format!("{what}: the cloud rejected the credentials or token"),
        },
        403 | 413 if is_quota_message(&message) => Error::QuotaExceeded {
            violations: parse_quota(&message).into_iter().collect(),
        },
        403 => Error::PermissionDenied { message: said },
        404 | 410 => Error::NotFound {
            what: if message.is_empty() {
                what.to_owned()
            } else {
                format!("{what} ({message})")
            },
        },
        409 => Error::Conflict { message: said },
        413 | 429 => Error::Throttled {
            what: said,
            retry_after: retry_after.and_then(|v| parse_retry_after(v, now)),
        },
        500..=599 => Error::Unavailable {
            message: said,
            source: None,
        },
        _ => Error::Invalid {
            violations: vec![FieldViolation::new(
                what,
                if message.is_empty() {
                    format!("the cloud refused the request (HTTP {status})")
                } else {
                    format!("the cloud refused the request (HTTP {status}): {message}")
                },
            )],
        },
    }
}

/// Maps a request that got no answer (connect error, timeout, broken body).
pub fn transport(what: &str, err: reqwest::Error) -> Error {
    let why = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    // reqwest's Display names the URL, never headers, so no token leaks.
    Error::unavailable(format!("{what}: request {why}"), err)
}

/// Parses `Retry-After`: delta-seconds or an HTTP date (RFC 9110 §10.2.3).
/// A date in the past means "now" (zero).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The human message inside an OpenStack error body.
///
/// Nova and Cinder wrap it as `{"itemNotFound": {"message": …}}`, Keystone as
/// `{"error": {"message": …}}`, Neutron as `{"NeutronError": {"message": …}}`,
/// Placement and Glance as `{"errors": [{"detail": …}]}` or plain text.
pub fn service_message(body: &str) -> String {
    let text = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) => json_message(&v).unwrap_or_default(),
        Err(_) => strip_html(body),
    };
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() > MAX_MESSAGE {
        let cut: String = text.chars().take(MAX_MESSAGE).collect();
        format!("{cut}…")
    } else {
        text
    }
}

fn json_message(v: &serde_json::Value) -> Option<String> {
    let obj = v.as_object()?;
    if let Some(errors) = obj.get("errors").and_then(|e| e.as_array()) {
        let first = errors.first()?;
        return first
            .get("detail")
            .or_else(|| first.get("title"))
            .and_then(|d| d.as_str())
            .map(str::to_owned);
    }
    if let Some(m) = obj.get("message").and_then(|m| m.as_str()) {
        return Some(m.to_owned());
    }
    obj.values().find_map(|inner| {
        inner
            .get("message")
            .and_then(|m| m.as_str())
            .map(str::to_owned)
    })
}

fn strip_html(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Whether a 403/413 message is about a quota rather than a rate limit or a
/// policy: Nova says "Quota exceeded for cores: …", Cinder
/// "VolumeSizeExceedsAvailableQuota: … exceeds allowed gigabytes quota".
pub fn is_quota_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("quota") && (m.contains("exceed") || m.contains("over"))
}

/// Best effort: the violation named by a Nova or Cinder quota message.
///
/// Nova: `Quota exceeded for cores: Requested 8, but already used 396 of 400 cores`.
/// Cinder: `… gigabytes quota. Requested 100G, quota is 1000G and 990G has been consumed.`
pub fn parse_quota(message: &str) -> Option<QuotaViolation> {
    let m = message.to_ascii_lowercase();
    if let Some(rest) = m.split("quota exceeded for ").nth(1) {
        let (resource, rest) = rest.split_once(':')?;
        let class = match resource.trim() {
            "cores" => ResourceClass::Vcpu,
            "ram" => ResourceClass::MemoryMib,
            _ => return None,
        };
        let requested = number_after(rest, "requested ")?;
        let used = number_after(rest, "already used ")?;
        let limit = number_after(rest, " of ")?;
        return Some(QuotaViolation {
            class,
            requested,
            used,
            limit,
        });
    }
    if m.contains("gigabytes quota") {
        return Some(QuotaViolation {
            class: ResourceClass::VolumeGib,
            requested: number_after(&m, "requested ")?,
            limit: number_after(&m, "quota is ")?,
            used: number_after(&m, " and ")?,
        });
    }
    None
}

/// The number right after the first `marker` that a digit follows.
fn number_after(s: &str, marker: &str) -> Option<u64> {
    s.split(marker).skip(1).find_map(|rest| {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use yunshu_core::ErrorKind;

    use super::*;

    fn kind(status: u16, retry: Option<&str>, body: &str) -> ErrorKind {
        map_status(status, retry, body, "nova: test", SystemTime::now()).kind()
    }

    #[test]
    fn statuses_map_to_kinds() {
        assert_eq!(kind(401, None, ""), ErrorKind::Unauthorized);
        assert_eq!(
            kind(
                403,
                None,
                r#"{"forbidden":{"message":"Policy doesn't allow"}}"#
            ),
            ErrorKind::PermissionDenied
        );
        assert_eq!(
            kind(
                404,
                None,
                r#"{"itemNotFound":{"code":404,"message":"Instance x could not be found."}}"#
            ),
            ErrorKind::NotFound
        );
        assert_eq!(kind(410, None, ""), ErrorKind::NotFound);
        assert_eq!(
            kind(
                409,
                None,
                r#"{"conflictingRequest":{"message":"Cannot 'start' instance while it is in vm_state active"}}"#
            ),
            ErrorKind::Conflict
        );
        assert_eq!(kind(429, Some("3"), ""), ErrorKind::Throttled);
        assert_eq!(
            kind(
                413,
                None,
                r#"{"overLimit":{"message":"This request was rate-limited."}}"#
            ),
            ErrorKind::Throttled
        );
        assert_eq!(
            kind(400, None, r#"{"badRequest":{"message":"Invalid input"}}"#),
            ErrorKind::Invalid
        );
        assert_eq!(kind(422, None, ""), ErrorKind::Invalid);
        for s in [500, 502, 503, 504] {
            assert_eq!(
                kind(s, None, "<html><body>Bad Gateway</body></html>"),
                ErrorKind::Unavailable
            );
        }
    }

    #[test]
    fn nova_quota_is_quota_exceeded_with_violation() {
        let body = r#"{"forbidden": {"code": 403, "message": "Quota exceeded for cores: Requested 8, but already used 396 of 400 cores"}}"#;
        let e = map_status(403, None, body, "nova: create server", SystemTime::now());
        assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
        assert_eq!(
            e.to_string(),
            "quota exceeded: vcpu requested 8, used 396, limit 400"
        );
    }

    #[test]
    fn cinder_quota_413_beats_its_retry_after() {
        let body = r#"{"overLimit": {"code": 413, "message": "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested 100000G, quota is 1000G and 1G has been consumed.", "retryAfter": "0"}}"#;
        let e = map_status(
            413,
            Some("0"),
            body,
            "cinder: create volume",
            SystemTime::now(),
        );
        assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
        assert_eq!(
            e.to_string(),
            "quota exceeded: volume_gib requested 100000, used 1, limit 1000"
        );
    }

    #[test]
    fn unknown_quota_class_still_quota_exceeded() {
        let body = r#"{"forbidden":{"message":"Quota exceeded for instances: Requested 1, but already used 10 of 10 instances"}}"#;
        let e = map_status(403, None, body, "nova: create server", SystemTime::now());
        assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
        match e {
            Error::QuotaExceeded { violations } => assert!(violations.is_empty()),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(120));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(120))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(60));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        match map_status(429, Some("12"), "", "placement: list", now) {
            Error::Throttled { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(12)))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn messages_come_from_every_body_shape() {
        assert_eq!(
            service_message(
                r#"{"error":{"code":401,"message":"The request you have made requires authentication.","title":"Unauthorized"}}"#
            ),
            "The request you have made requires authentication."
        );
        assert_eq!(
            service_message(
                r#"{"errors":[{"status":404,"title":"Not Found","detail":"No resource provider with uuid x found"}]}"#
            ),
            "No resource provider with uuid x found"
        );
        assert_eq!(
            service_message(
                r#"{"NeutronError":{"type":"NetworkNotFound","message":"Network n could not be found."}}"#
            ),
            "Network n could not be found."
        );
        assert_eq!(
            service_message("<html><body><h1>404 Not Found</h1>\n  gone</body></html>"),
            "404 Not Found gone"
        );
        assert!(service_message(&"x".repeat(1000)).chars().count() <= MAX_MESSAGE + 1);
    }

    #[test]
    fn unauthorized_message_does_not_echo_the_body() {
        let e = map_status(
            401,
            None,
            r#"{"error":{"message":"bad password s3cret"}}"#,
            "keystone: authenticate",
            SystemTime::now(),
        );
        assert!(!e.to_string().contains("s3cret"));
    }

    #[test]
    fn invalid_names_the_operation() {
        let e = map_status(
            400,
            None,
            r#"{"badRequest":{"message":"Invalid flavorRef"}}"#,
            "nova: create server",
            SystemTime::now(),
        );
        assert_eq!(
            e.to_string(),
            "invalid request: nova: create server: the cloud refused the request (HTTP 400): Invalid flavorRef"
        );
    }
}
