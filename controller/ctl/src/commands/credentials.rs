//! `credentials issue bucket` and `credentials revoke bucket`.
//!
//! Issuing reads the bucket first (GetBucket): an unknown name fails
//! before anything is minted, and the S3 name a client needs — the
//! bucket's `status.cloud_id`, not its Yunshu name — comes from there. The
//! secret exists only in the server's answer, so nothing may fail between
//! receiving and printing it. A request id makes a retried issue return
//! the same keys instead of minting more.

use yunshu_proto::api::v1 as pb;

use super::{Context, Io, new_request_id};
use crate::{
    cli::{
        CredentialsCommand, IssueBucketCredentialsArgs, IssueCredentialsCommand,
        RevokeBucketCredentialsArgs, RevokeCredentialsCommand,
    },
    error::{Error, Result},
    output::{
        credentials::{
            IssuedCredentialsView, RevokedCredentialsView, SECRET_SHOWN_ONCE, render_issued,
        },
        emit,
    },
    resource::{Kind, Resource},
};

/// Runs a `credentials` subcommand.
pub async fn run(ctx: &Context, c: &CredentialsCommand, io: &mut Io<'_>) -> Result<()> {
    match c {
        CredentialsCommand::Issue(IssueCredentialsCommand::Bucket(a)) => issue(ctx, a, io).await,
        CredentialsCommand::Revoke(RevokeCredentialsCommand::Bucket(a)) => revoke(ctx, a, io).await,
    }
}

/// The bucket's name on the object store; empty if unknown.
fn cloud_id(r: &Resource) -> &str {
    match r {
        Resource::Bucket(b) => b.status.as_ref().map_or("", |s| s.cloud_id.as_str()),
        Resource::Instance(_) | Resource::Volume(_) => "",
    }
}

/// `--ttl` as the API's duration.
pub fn ttl(ttl: Option<std::time::Duration>) -> Result<Option<prost_types::Duration>> {
    ttl.map(|d| {
        prost_types::Duration::try_from(d)
            .map_err(|_| Error::Usage("--ttl: the duration is too long".into()))
    })
    .transpose()
}

/// `credentials issue bucket NAME [--ttl D]`.
pub async fn issue(ctx: &Context, a: &IssueBucketCredentialsArgs, io: &mut Io<'_>) -> Result<()> {
    let name = ctx.resource_name(Kind::Bucket, &a.name)?;
    let ttl = ttl(a.ttl)?;
    let bucket = ctx.client.get(Kind::Bucket, &name).await?;
    let request_id = a.request_id.clone().unwrap_or_else(new_request_id);
    let req = pb::IssueBucketCredentialsRequest {
        name,
        ttl,
        request_id: request_id.clone(),
    };
    let c = &ctx.client;
    let issued = c
        .unary(c.buckets.clone().issue_bucket_credentials(req))
        .await
        .map_err(|e| e.for_mutation(&request_id))?;
    let view = IssuedCredentialsView::new(cloud_id(&bucket), &issued);
    let short = bucket.name().to_owned();
    emit(ctx.format, &view, io.out, |w| {
        render_issued(&short, &issued, &view, ctx.now, w)
    })?;
    writeln!(io.err, "{SECRET_SHOWN_ONCE}")?;
    if view.bucket.is_none() {
        writeln!(
            io.err,
            "warning: the server reported no object-store name for bucket {short}"
        )?;
    }
    Ok(())
}

/// `credentials revoke bucket NAME ACCESS_KEY_ID`.
pub async fn revoke(ctx: &Context, a: &RevokeBucketCredentialsArgs, io: &mut Io<'_>) -> Result<()> {
    let name = ctx.resource_name(Kind::Bucket, &a.name)?;
    let request_id = a.request_id.clone().unwrap_or_else(new_request_id);
    let req = pb::RevokeBucketCredentialsRequest {
        name: name.clone(),
        access_key_id: a.access_key_id.clone(),
        request_id: request_id.clone(),
    };
    let c = &ctx.client;
    c.unary(c.buckets.clone().revoke_bucket_credentials(req))
        .await
        .map_err(|e| e.for_mutation(&request_id))?;
    let short = name.rsplit('/').next().unwrap_or(&name).to_owned();
    let view = RevokedCredentialsView {
        name,
        access_key_id: a.access_key_id.clone(),
        revoked: true,
    };
    emit(ctx.format, &view, io.out, |w| {
        writeln!(
            w,
            "credentials {} of bucket {short} revoked",
            view.access_key_id
        )
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn ttls_become_api_durations() {
        assert_eq!(ttl(None).expect("ok"), None);
        assert_eq!(
            ttl(Some(Duration::from_secs(3600))).expect("ok"),
            Some(prost_types::Duration {
                seconds: 3600,
                nanos: 0
            })
        );
        let e = ttl(Some(Duration::MAX)).expect_err("too long");
        assert_eq!(e.exit(), crate::error::Exit::Usage);
    }
}
