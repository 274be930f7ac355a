//! Tests of errors: exit codes, rendering, hints.

use tonic_types::ErrorDetails;

use super::*;

fn rendered(e: &Error) -> String {
    let mut out = Vec::new();
    e.render(&mut out).expect("render");
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn every_status_code_has_a_documented_exit_code() {
    use Code::*;
    let expect = [
        (Ok, 0),
        (Cancelled, 1),
        (Unknown, 1),
        (InvalidArgument, 2),
        (DeadlineExceeded, 7),
        (NotFound, 3),
        (AlreadyExists, 6),
        (PermissionDenied, 4),
        (ResourceExhausted, 5),
        (FailedPrecondition, 6),
        (Aborted, 6),
        (OutOfRange, 6),
        (Unimplemented, 1),
        (Internal, 1),
        (Unavailable, 7),
        (DataLoss, 1),
        (Unauthenticated, 4),
    ];
    for (code, exit) in expect {
        assert_eq!(Exit::for_code(code).code(), exit, "{code:?}");
        assert_eq!(
            Error::from(Status::new(code, "x")).exit().code(),
            exit,
            "{code:?}"
        );
    }
}

#[test]
fn local_failures_have_exit_codes_too() {
    let cases = [
        (Error::Usage("no endpoint".into()), 2),
        (Error::ConfigExists { path: "/x".into() }, 6),
        (
            Error::Connect {
                endpoint: "http://127.0.0.1:1".into(),
                reason: "refused".into(),
                tls: false,
            },
            7,
        ),
        (
            Error::Connect {
                endpoint: "https://127.0.0.1:1".into(),
                reason: "invalid peer certificate: UnknownIssuer".into(),
                tls: true,
            },
            2,
        ),
        (
            Error::ReadFile {
                what: "token file",
                path: "/x".into(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            },
            2,
        ),
        (
            Error::Timeout {
                after: Duration::from_secs(60),
                waiting: "waiting".into(),
            },
            7,
        ),
        (
            Error::Failed {
                kind: "instance",
                name: "web-1".into(),
                message: "no valid host".into(),
            },
            8,
        ),
        (
            Error::Vanished {
                kind: "instance",
                name: "web-1".into(),
            },
            3,
        ),
        (Error::Output(io::Error::other("disk full")), 1),
    ];
    for (error, code) in cases {
        assert_eq!(error.exit().code(), code, "{error}");
    }
    let unsure = Error::from(Status::unavailable("connection reset")).for_mutation("r-1");
    assert_eq!(unsure.exit(), Exit::Unavailable);
    assert_eq!(
        rendered(&unsure),
        "error: connection reset\nhint: the request may or may not have been applied; \
         retry safely with --request-id r-1\n"
    );
    let refused = Error::from(Status::invalid_argument("bad")).for_mutation("r-1");
    assert!(!rendered(&refused).contains("hint"));
}

#[test]
fn field_violations_print_one_per_line_under_the_headline() {
    let mut details = ErrorDetails::new();
    details.add_bad_request_violation("instance.spec.vcpu", "must be at least 1");
    details.add_bad_request_violation("instance_id", "must be a DNS label");
    let status = Status::with_error_details(
        Code::InvalidArgument,
        "invalid request: instance.spec.vcpu: must be at least 1; instance_id: must be a DNS label",
        details,
    );
    let error = Error::from(status);
    assert_eq!(error.exit(), Exit::Usage);
    assert_eq!(
        rendered(&error),
        "error: invalid request\n  instance.spec.vcpu: must be at least 1 (--vcpu)\n  instance_id: must be a DNS label (the NAME argument)\n"
    );
}

#[test]
fn a_message_that_says_more_than_the_violations_is_kept() {
    let mut details = ErrorDetails::new();
    details.add_bad_request_violation("name", "must be a DNS label");
    let status = Status::with_error_details(Code::InvalidArgument, "the name is wrong", details);
    assert_eq!(
        rendered(&status.into()),
        "error: the name is wrong\n  name: must be a DNS label\n"
    );
}

#[test]
fn quota_failures_print_verbatim() {
    let mut details = ErrorDetails::new();
    details.add_quota_failure_violation("vcpu", "vcpu requested 16, used 44, limit 48");
    let status = Status::with_error_details(
        Code::ResourceExhausted,
        "quota exceeded: vcpu requested 16, used 44, limit 48",
        details,
    );
    let error = Error::from(status);
    assert_eq!(error.exit(), Exit::Exhausted);
    assert_eq!(
        rendered(&error),
        "error: quota exceeded: vcpu requested 16, used 44, limit 48\n"
    );
}

#[test]
fn quota_violations_missing_from_the_message_are_listed() {
    let mut details = ErrorDetails::new();
    details.add_quota_failure_violation("vcpu", "vcpu requested 16, used 44, limit 48");
    details.add_quota_failure_violation(
        "memory_mib",
        "memory_mib requested 32768, used 0, limit 1024",
    );
    let status = Status::with_error_details(
        Code::ResourceExhausted,
        "quota exceeded: vcpu requested 16, used 44, limit 48",
        details,
    );
    assert_eq!(
        rendered(&status.into()),
        "error: quota exceeded: vcpu requested 16, used 44, limit 48\n  \
         memory_mib requested 32768, used 0, limit 1024\n"
    );
}

#[test]
fn rate_limits_say_when_to_retry() {
    let mut details = ErrorDetails::new();
    details.set_retry_info(Some(Duration::from_secs(2)));
    let status = Status::with_error_details(Code::ResourceExhausted, "rate limited", details);
    assert_eq!(
        rendered(&status.into()),
        "error: rate limited\nhint: retry after 2s\n"
    );
}

#[test]
fn empty_messages_name_the_code() {
    assert_eq!(
        rendered(&Status::internal("").into()),
        "error: Internal (no message from the server)\n"
    );
}
