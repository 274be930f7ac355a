//! The IAM query API (`Action=CreateUser&Version=2010-05-08`, form-encoded,
//! SigV4 for service `iam`) as SeaweedFS embeds it on its S3 port.
//!
//! SeaweedFS keeps one account: its IAM users reach nothing until an inline
//! policy allows it, so each department user gets one policy per bucket it
//! owns, and each issued user one policy for its bucket. Bucket stats come
//! from the S3 API (the admin identity lists every bucket and reads tags) and,
//! when `weed shell` is configured, sizes from `s3.bucket.list`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;
use http::Method;
use yunshu_core::{Error, ErrorKind, Result};

use super::{AdminApi, BucketStat, IssuedGrant, QuotaOutcome, weed::Weed};
use crate::{
    config::{Dialect, KeyPair, S3Config, Secret},
    error::{classify, from_sdk, retry_after},
    http::{Body, SignedHttp},
    naming::BUCKET_PREFIX,
    policy,
};

/// The IAM client, with the admin's S3 client for bucket listings.
#[derive(Debug)]
pub struct IamAdmin {
    http: SignedHttp,
    s3: aws_sdk_s3::Client,
    weed: Option<Weed>,
}

/// The inline policy name that lets a user reach `bucket`.
fn policy_name(bucket: &str) -> String {
    format!("bucket-{bucket}")
}

impl IamAdmin {
    /// A client for the server in `config`; `s3` signs as the admin.
    pub fn new(config: &S3Config, s3: aws_sdk_s3::Client) -> Result<Self> {
        Ok(Self {
            http: SignedHttp::new(
                &config.endpoint,
                &config.region,
                &config.admin,
                "iam",
                config.timeout,
            )?,
            s3,
            weed: config.weed.clone().map(|w| Weed::new(w, config.timeout)),
        })
    }

    /// Calls `action` with `params`; returns the XML answer.
    async fn call(&self, action: &str, params: &[(&str, &str)], what: &str) -> Result<String> {
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("Action", action);
            form.append_pair("Version", "2010-05-08");
            for (k, v) in params {
                form.append_pair(k, v);
            }
            form.finish()
        };
        let body = Body::Bytes {
            content_type: "application/x-www-form-urlencoded; charset=utf-8",
            bytes: Bytes::from(form),
        };
        let reply = self.http.send(Method::POST, "/", &[], body, what).await?;
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        if reply.ok() {
            return Ok(text);
        }
        let code = texts(&text, "Code").into_iter().next();
        Err(classify(
            reply.status,
            code.as_deref(),
            retry_after(reply.retry_after()),
            what,
        ))
    }

    async fn user_policies(&self, user: &str) -> Result<Vec<String>> {
        let xml = self
            .call(
                "ListUserPolicies",
                &[("UserName", user)],
                &format!("list policies of user {user}"),
            )
            .await?;
        Ok(texts(&xml, "member"))
    }

    async fn tags(&self, bucket: &str) -> Result<BTreeMap<String, String>> {
        match self.s3.get_bucket_tagging().bucket(bucket).send().await {
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
}

/// The text of every element named `tag`, in document order.
fn texts(xml: &str, tag: &str) -> Vec<String> {
    roxmltree::Document::parse(xml)
        .map(|doc| {
            doc.descendants()
                .filter(|n| n.is_element() && n.tag_name().name() == tag)
                .filter_map(|n| n.text().map(|t| t.trim().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn gone_is_ok(result: Result<String>) -> Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[async_trait]
impl AdminApi for IamAdmin {
    fn dialect(&self) -> Dialect {
        Dialect::Iam
    }

    async fn health(&self) -> Result<()> {
        self.call("ListUsers", &[("MaxItems", "1")], "list users")
            .await
            .map(drop)
    }

    async fn ensure_user(
        &self,
        user: &str,
        _display_name: &str,
        _may_create_buckets: bool,
    ) -> Result<bool> {
        // An IAM user may do nothing its policies do not allow, creating
        // buckets included, so `may_create_buckets` needs no setting here.
        match self
            .call(
                "GetUser",
                &[("UserName", user)],
                &format!("get user {user}"),
            )
            .await
        {
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match self
            .call(
                "CreateUser",
                &[("UserName", user)],
                &format!("create user {user}"),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn delete_user(&self, user: &str) -> Result<()> {
        let keys = match self.access_keys(user).await {
            Ok(k) => k,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for key in keys {
            self.delete_access_key(user, &key).await?;
        }
        for name in self.user_policies(user).await.unwrap_or_default() {
            gone_is_ok(
                self.call(
                    "DeleteUserPolicy",
                    &[("UserName", user), ("PolicyName", &name)],
                    &format!("delete policy {name} of user {user}"),
                )
                .await,
            )?;
        }
        gone_is_ok(
            self.call(
                "DeleteUser",
                &[("UserName", user)],
                &format!("delete user {user}"),
            )
            .await,
        )
    }

    async fn list_users(&self, prefix: &str) -> Result<Vec<String>> {
        let mut users = Vec::new();
        let mut marker: Option<String> = None;
        for _page in 0..1000 {
            let mut params = vec![("MaxItems", "1000")];
            if let Some(m) = marker.as_deref() {
                params.push(("Marker", m));
            }
            let xml = self.call("ListUsers", &params, "list users").await?;
            users.extend(
                texts(&xml, "UserName")
                    .into_iter()
                    .filter(|u| u.starts_with(prefix)),
            );
            let truncated = texts(&xml, "IsTruncated")
                .first()
                .is_some_and(|t| t == "true");
            marker = texts(&xml, "Marker").into_iter().next();
            if !truncated || marker.is_none() {
                break;
            }
        }
        users.sort();
        users.dedup();
        Ok(users)
    }

    async fn access_keys(&self, user: &str) -> Result<Vec<String>> {
        let xml = self
            .call(
                "ListAccessKeys",
                &[("UserName", user)],
                &format!("list access keys of user {user}"),
            )
            .await?;
        Ok(texts(&xml, "AccessKeyId"))
    }

    async fn create_access_key(&self, user: &str) -> Result<KeyPair> {
        let what = format!("create an access key for user {user}");
        let xml = self
            .call("CreateAccessKey", &[("UserName", user)], &what)
            .await?;
        match (
            texts(&xml, "AccessKeyId").into_iter().next(),
            texts(&xml, "SecretAccessKey").into_iter().next(),
        ) {
            (Some(access_key), Some(secret)) => Ok(KeyPair {
                access_key,
                secret_key: Secret::new(secret),
            }),
            _ => Err(Error::internal(format!("{what}: no key in the answer"))),
        }
    }

    async fn delete_access_key(&self, user: &str, access_key: &str) -> Result<()> {
        gone_is_ok(
            self.call(
                "DeleteAccessKey",
                &[("UserName", user), ("AccessKeyId", access_key)],
                &format!("delete access key {access_key} of user {user}"),
            )
            .await,
        )
    }

    async fn key_owner(&self, access_key: &str, prefix: &str) -> Result<Option<String>> {
        self.owner_among(access_key, prefix).await
    }

    fn issued_grant(&self) -> IssuedGrant {
        IssuedGrant::UserPolicy
    }

    async fn grant_bucket(&self, user: &str, bucket: &str) -> Result<()> {
        let document = policy::user_policy(bucket);
        self.call(
            "PutUserPolicy",
            &[
                ("UserName", user),
                ("PolicyName", &policy_name(bucket)),
                ("PolicyDocument", &document),
            ],
            &format!("grant user {user} bucket {bucket}"),
        )
        .await
        .map(drop)
    }

    async fn revoke_bucket(&self, user: &str, bucket: &str) -> Result<()> {
        gone_is_ok(
            self.call(
                "DeleteUserPolicy",
                &[("UserName", user), ("PolicyName", &policy_name(bucket))],
                &format!("revoke bucket {bucket} from user {user}"),
            )
            .await,
        )
    }

    async fn set_bucket_quota(
        &self,
        _owner: &str,
        bucket: &str,
        max_bytes: u64,
        max_objects: Option<u64>,
    ) -> Result<QuotaOutcome> {
        let objects_note = max_objects.map(|_| "SeaweedFS has no object-count quota".to_owned());
        let Some(weed) = &self.weed else {
            return Ok(QuotaOutcome {
                bytes: false,
                objects: false,
                note: Some(
                    "quota not enforced: SeaweedFS sets quotas through `weed shell` only; configure spec.settings.seaweedfs.*"
                        .to_owned(),
                ),
            });
        };
        let mib = weed.set_quota(bucket, max_bytes).await?;
        let mut note = format!(
            "size quota {mib} MiB, enforced lazily by SeaweedFS (writes refused with 500 once the server marks the bucket read-only)"
        );
        if let Some(o) = objects_note {
            note.push_str("; ");
            note.push_str(&o);
        }
        Ok(QuotaOutcome {
            bytes: true,
            objects: false,
            note: Some(note),
        })
    }

    async fn release_bucket(&self, bucket: &str) -> Result<()> {
        match &self.weed {
            Some(weed) => weed.release(bucket).await,
            None => Ok(()),
        }
    }

    async fn bucket_stat(&self, _bucket: &str) -> Result<Option<BucketStat>> {
        // Sizes from `weed shell` lag behind writes and object counts are
        // not reported at all: the adapter counts by listing instead.
        Ok(None)
    }

    async fn bucket_stats(&self) -> Result<Vec<BucketStat>> {
        let listed = self
            .s3
            .list_buckets()
            .send()
            .await
            .map_err(|e| from_sdk(e, "list buckets"))?;
        let sizes = match &self.weed {
            Some(weed) => weed.buckets().await.unwrap_or_else(|error| {
                tracing::warn!(%error, "bucket sizes from weed shell unavailable");
                BTreeMap::new()
            }),
            None => BTreeMap::new(),
        };
        let mut stats = Vec::new();
        for b in listed.buckets() {
            let Some(name) = b.name() else { continue };
            let tags = if name.starts_with(BUCKET_PREFIX) {
                Some(self.tags(name).await?)
            } else {
                None
            };
            let weed = sizes.get(name);
            stats.push(BucketStat {
                name: name.to_owned(),
                owner: weed.and_then(|w| w.owner.clone()),
                bytes: weed.map(|w| w.size),
                objects: None,
                tags,
            });
        }
        Ok(stats)
    }

    async fn maintain(&self) -> Result<()> {
        match &self.weed {
            Some(weed) => weed.enforce().await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_iam_answers() {
        let xml = r#"<CreateAccessKeyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <CreateAccessKeyResult><AccessKey><UserName>u</UserName>
    <AccessKeyId>AKIA1</AccessKeyId><Status>Active</Status>
    <SecretAccessKey>s&amp;cret</SecretAccessKey></AccessKey></CreateAccessKeyResult>
</CreateAccessKeyResponse>"#;
        assert_eq!(texts(xml, "AccessKeyId"), ["AKIA1"]);
        assert_eq!(texts(xml, "SecretAccessKey"), ["s&cret"]);
        let err = "<ErrorResponse><Error><Code>NoSuchEntity</Code><Message>x</Message></Error></ErrorResponse>";
        assert_eq!(texts(err, "Code"), ["NoSuchEntity"]);
        assert!(texts("not xml", "Code").is_empty());
    }
}
