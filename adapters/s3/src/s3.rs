//! The S3 side: building clients, and the bucket operations the adapter
//! performs — tags, versioning, policy, counting and purging objects.
//!
//! Clients use path-style addressing (loopback and IP endpoints have no
//! per-bucket host names) and compute checksums only where an operation
//! requires one: aws-sdk-s3's default checksums break streaming uploads on
//! Ceph RGW (`XAmzContentSHA256Mismatch`). The SDK's own retries are off —
//! the runtime's adapter stack retries with its budget and circuit breaker —
//! and every call is bounded by the configured timeout.

use std::collections::BTreeMap;

use aws_sdk_s3::{
    Client,
    config::{
        BehaviorVersion, Credentials as AwsCredentials, Region, RequestChecksumCalculation,
        ResponseChecksumValidation, SharedHttpClient, retry::RetryConfig, timeout::TimeoutConfig,
    },
    types::{
        BucketVersioningStatus, Delete, ObjectIdentifier, Tag, Tagging, VersioningConfiguration,
    },
};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use yunshu_core::{Error, ErrorKind, Result};

use crate::{
    config::{KeyPair, S3Config},
    error::from_sdk,
};

/// Most keys per `ListObjects`/`DeleteObjects` page.
const PAGE: i32 = 1000;

/// Most pages walked when counting; beyond that the count is a lower bound.
const MAX_PAGES: usize = 10_000;

/// One HTTPS-capable HTTP client (rustls with *ring*) shared by every S3
/// client of an adapter.
pub fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// An S3 client for `config`'s endpoint signing as `key`.
pub fn client(config: &S3Config, http: &SharedHttpClient, key: &KeyPair) -> Client {
    let credentials = AwsCredentials::new(
        key.access_key.clone(),
        key.secret_key.expose().to_owned(),
        None,
        None,
        "yunshu",
    );
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(config.endpoint.clone())
        .region(Region::new(config.region.clone()))
        .credentials_provider(credentials)
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(config.timeout.min(std::time::Duration::from_secs(10)))
                .operation_timeout(config.timeout)
                .build(),
        )
        .http_client(http.clone())
        .build();
    Client::from_conf(conf)
}

/// Objects and bytes in a bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Current objects.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Whether `bucket` exists and the client may see it.
pub async fn exists(client: &Client, bucket: &str) -> Result<bool> {
    match client.head_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(true),
        Err(e) => {
            let e = from_sdk(e, &format!("bucket {bucket}"));
            if e.kind() == ErrorKind::NotFound {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

/// The bucket's tags (empty if it has none).
pub async fn tags(client: &Client, bucket: &str) -> Result<BTreeMap<String, String>> {
    match client.get_bucket_tagging().bucket(bucket).send().await {
        Ok(out) => Ok(out
            .tag_set()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect()),
        Err(e) => {
            let e = from_sdk(e, &format!("tags of bucket {bucket}"));
            if e.kind() == ErrorKind::NotFound {
                Ok(BTreeMap::new())
            } else {
                Err(e)
            }
        }
    }
}

/// Replaces the bucket's tags.
pub async fn put_tags(
    client: &Client,
    bucket: &str,
    tags: &BTreeMap<String, String>,
) -> Result<()> {
    let what = format!("tag bucket {bucket}");
    let tag_set = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| build_error(&what, e))?;
    let tagging = Tagging::builder()
        .set_tag_set(Some(tag_set))
        .build()
        .map_err(|e| build_error(&what, e))?;
    client
        .put_bucket_tagging()
        .bucket(bucket)
        .tagging(tagging)
        .send()
        .await
        .map(drop)
        .map_err(|e| from_sdk(e, &what))
}

/// Whether versioning is enabled.
pub async fn versioning_enabled(client: &Client, bucket: &str) -> Result<bool> {
    let out = client
        .get_bucket_versioning()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| from_sdk(e, &format!("versioning of bucket {bucket}")))?;
    Ok(out.status() == Some(&BucketVersioningStatus::Enabled))
}

/// Turns versioning on, or suspends it if it was on and is not wanted.
pub async fn set_versioning(client: &Client, bucket: &str, enabled: bool) -> Result<()> {
    let currently = versioning_enabled(client, bucket).await?;
    if currently == enabled {
        return Ok(());
    }
    let status = if enabled {
        BucketVersioningStatus::Enabled
    } else {
        BucketVersioningStatus::Suspended
    };
    client
        .put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(VersioningConfiguration::builder().status(status).build())
        .send()
        .await
        .map(drop)
        .map_err(|e| from_sdk(e, &format!("set versioning of bucket {bucket}")))
}

/// The bucket's policy document, if it has one.
pub async fn policy(client: &Client, bucket: &str) -> Result<Option<String>> {
    match client.get_bucket_policy().bucket(bucket).send().await {
        Ok(out) => Ok(out.policy().map(str::to_owned)),
        Err(e) => {
            let e = from_sdk(e, &format!("policy of bucket {bucket}"));
            if e.kind() == ErrorKind::NotFound {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

/// Replaces the bucket's policy.
pub async fn put_policy(client: &Client, bucket: &str, document: &str) -> Result<()> {
    client
        .put_bucket_policy()
        .bucket(bucket)
        .policy(document)
        .send()
        .await
        .map(drop)
        .map_err(|e| from_sdk(e, &format!("set the policy of bucket {bucket}")))
}

/// Counts current objects and their bytes by listing.
pub async fn usage(client: &Client, bucket: &str) -> Result<Usage> {
    let mut usage = Usage::default();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let out = client
            .list_objects_v2()
            .bucket(bucket)
            .max_keys(PAGE)
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|e| from_sdk(e, &format!("list bucket {bucket}")))?;
        for o in out.contents() {
            usage.objects += 1;
            usage.bytes += u64::try_from(o.size().unwrap_or(0)).unwrap_or(0);
        }
        token = out.next_continuation_token().map(str::to_owned);
        if !out.is_truncated().unwrap_or(false) || token.is_none() {
            break;
        }
    }
    Ok(usage)
}

/// Every object version and delete marker, as (key, version id).
async fn versions(client: &Client, bucket: &str) -> Result<Vec<(String, Option<String>)>> {
    let mut all = Vec::new();
    let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
    for _ in 0..MAX_PAGES {
        let out = client
            .list_object_versions()
            .bucket(bucket)
            .max_keys(PAGE)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .map_err(|e| from_sdk(e, &format!("list versions in bucket {bucket}")))?;
        for v in out.versions() {
            if let Some(k) = v.key() {
                all.push((k.to_owned(), v.version_id().map(str::to_owned)));
            }
        }
        for m in out.delete_markers() {
            if let Some(k) = m.key() {
                all.push((k.to_owned(), m.version_id().map(str::to_owned)));
            }
        }
        key_marker = out.next_key_marker().map(str::to_owned);
        version_marker = out.next_version_id_marker().map(str::to_owned);
        if !out.is_truncated().unwrap_or(false) || key_marker.is_none() {
            break;
        }
    }
    Ok(all)
}

/// How many objects keep the bucket from being deleted: current objects,
/// or, when there are none, old versions and delete markers.
pub async fn blocking_objects(client: &Client, bucket: &str) -> Result<u64> {
    let current = usage(client, bucket).await?.objects;
    if current > 0 {
        return Ok(current);
    }
    Ok(versions(client, bucket).await?.len() as u64)
}

/// Deletes every object, version and delete marker; returns how many.
pub async fn purge(client: &Client, bucket: &str) -> Result<u64> {
    let mut deleted = 0u64;
    // Versions first (they include current objects), then whatever a plain
    // listing still shows, for servers with partial version support.
    for _round in 0..3 {
        let mut batch = versions(client, bucket).await?;
        if batch.is_empty() {
            let out = client
                .list_objects_v2()
                .bucket(bucket)
                .max_keys(PAGE)
                .send()
                .await
                .map_err(|e| from_sdk(e, &format!("list bucket {bucket}")))?;
            batch = out
                .contents()
                .iter()
                .filter_map(|o| o.key().map(|k| (k.to_owned(), None)))
                .collect();
        }
        if batch.is_empty() {
            return Ok(deleted);
        }
        for chunk in batch.chunks(usize::try_from(PAGE).unwrap_or(1000)) {
            deleted += delete_batch(client, bucket, chunk).await?;
        }
    }
    Ok(deleted)
}

async fn delete_batch(
    client: &Client,
    bucket: &str,
    keys: &[(String, Option<String>)],
) -> Result<u64> {
    let what = format!("delete objects in bucket {bucket}");
    let objects = keys
        .iter()
        .map(|(k, v)| {
            ObjectIdentifier::builder()
                .key(k)
                .set_version_id(v.clone())
                .build()
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| build_error(&what, e))?;
    let delete = Delete::builder()
        .set_objects(Some(objects))
        .quiet(true)
        .build()
        .map_err(|e| build_error(&what, e))?;
    let out = client
        .delete_objects()
        .bucket(bucket)
        .delete(delete)
        .send()
        .await
        .map_err(|e| from_sdk(e, &what))?;
    if let Some(first) = out.errors().first() {
        return Err(Error::Unavailable {
            message: format!(
                "{what}: {} of {} failed, first {} ({})",
                out.errors().len(),
                keys.len(),
                first.key().unwrap_or("?"),
                first.code().unwrap_or("no code")
            ),
            source: None,
        });
    }
    Ok(keys.len() as u64)
}

fn build_error(what: &str, e: aws_sdk_s3::error::BuildError) -> Error {
    Error::Internal {
        message: format!("{what}: the request could not be built"),
        source: Some(Box::new(e)),
    }
}
