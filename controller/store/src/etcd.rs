//! The etcd backend (etcd 3.4+ over etcd-client).
//!
//! Unary calls carry a deadline; watches run in a task that reconnects after
//! a disconnect from the first revision it has not delivered, so the stream
//! sees every change exactly once, and ends with `Compacted` when etcd has
//! compacted that revision away.

use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, CompactionOptions, Compare as EtcdCompare, CompareOp, ConnectOptions, EventType,
    GetOptions, PutOptions, Txn as EtcdTxn, TxnOp, WatchOptions,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use yunshu_core::{
    Error, Result,
    store::{
        CmpOp, EventKind, KeyValue, LeaseId, Op, RangeRequest, RangeResponse, Revision, Store,
        StoreCapabilities, Txn, TxnResponse, WatchEvent, WatchStream, prefix_end,
    },
};

/// How to reach etcd.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// Client URLs, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Deadline of each unary call.
    pub request_timeout: Duration,
    /// Deadline of connecting.
    pub connect_timeout: Duration,
    /// The server's `--max-txn-ops` (128 unless changed).
    pub max_txn_ops: usize,
}

impl EtcdConfig {
    /// Defaults for the given endpoints.
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            max_txn_ops: 128,
        }
    }
}

/// A `Store` on an etcd cluster.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    config: EtcdConfig,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.config.endpoints)
            .finish_non_exhaustive()
    }
}

fn map_err(action: &'static str) -> impl FnOnce(etcd_client::Error) -> Error {
    move |e| {
        let message = format!("etcd failed to {action}");
        match &e {
            etcd_client::Error::GRpcStatus(s) => match s.code() {
                tonic::Code::NotFound => Error::not_found(format!("{action}: {}", s.message())),
                tonic::Code::InvalidArgument | tonic::Code::OutOfRange => Error::Invalid {
                    violations: vec![yunshu_core::error::FieldViolation::new(action, s.message())],
                },
                tonic::Code::ResourceExhausted => Error::Throttled {
                    what: "etcd".into(),
                    retry_after: None,
                },
                tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Cancelled
                | tonic::Code::Unknown => Error::unavailable(message, e),
                _ => Error::Internal {
                    message,
                    source: Some(Box::new(e)),
                },
            },
            etcd_client::Error::LeaseKeepAliveError(m) if m.contains("not found") => {
                Error::not_found(format!("lease ({action})"))
            }
            _ => Error::unavailable(message, e),
        }
    }
}

fn convert_kv(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
        lease: (kv.lease() != 0).then_some(kv.lease()),
    }
}

fn header_revision(h: Option<&etcd_client::ResponseHeader>) -> Revision {
    h.map_or(0, etcd_client::ResponseHeader::revision)
}

impl EtcdStore {
    /// Connects to etcd.
    pub async fn connect(config: EtcdConfig) -> Result<Self> {
        let options = ConnectOptions::new()
            .with_connect_timeout(config.connect_timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        let client = tokio::time::timeout(
            config.connect_timeout,
            Client::connect(config.endpoints.clone(), Some(options)),
        )
        .await
        .map_err(|_| Error::Unavailable {
            message: format!(
                "timed out connecting to etcd at {}",
                config.endpoints.join(",")
            ),
            source: None,
        })?
        .map_err(map_err("connect"))?;
        Ok(Self { client, config })
    }

    async fn deadline<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::time::timeout(self.config.request_timeout, fut)
            .await
            .map_err(|_| Error::Unavailable {
                message: "etcd did not answer in time".into(),
                source: None,
            })?
    }
}

#[async_trait]
impl Store for EtcdStore {
    fn backend(&self) -> &'static str {
        "etcd"
    }

    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities {
            shared: true,
            max_txn_ops: self.config.max_txn_ops,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let mut kv = self.client.kv_client();
        let resp = self
            .deadline(async { kv.get(key, None).await.map_err(map_err("get a key")) })
            .await?;
        Ok(resp.kvs().first().map(convert_kv))
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        let start = match &request.start_after {
            Some(after) if after.as_str() >= request.prefix.as_str() => format!("{after}\0"),
            _ => request.prefix.clone(),
        };
        let mut options = GetOptions::new();
        options = match prefix_end(request.prefix.as_bytes()) {
            Some(end) => options.with_range(end),
            None => options.with_from_key(),
        };
        if request.limit > 0 {
            options = options.with_limit(i64::try_from(request.limit).unwrap_or(i64::MAX));
        }
        let mut kv = self.client.kv_client();
        let resp = self
            .deadline(async {
                kv.get(start, Some(options))
                    .await
                    .map_err(map_err("range keys"))
            })
            .await?;
        Ok(RangeResponse {
            kvs: resp.kvs().iter().map(convert_kv).collect(),
            more: resp.more(),
            revision: header_revision(resp.header()),
        })
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let compares: Vec<EtcdCompare> = txn
            .compares
            .iter()
            .map(|c| {
                let op = match c.op {
                    CmpOp::Equal => CompareOp::Equal,
                    CmpOp::NotEqual => CompareOp::NotEqual,
                    CmpOp::Less => CompareOp::Less,
                    CmpOp::Greater => CompareOp::Greater,
                };
                EtcdCompare::mod_revision(c.key.as_str(), op, c.mod_revision)
            })
            .collect();
        let ops = |ops: &[Op]| -> Vec<TxnOp> {
            ops.iter()
                .map(|op| match op {
                    Op::Put { key, value, lease } => TxnOp::put(
                        key.as_str(),
                        value.clone(),
                        lease.map(|l| PutOptions::new().with_lease(l)),
                    ),
                    Op::Delete { key } => TxnOp::delete(key.as_str(), None),
                })
                .collect()
        };
        let request = EtcdTxn::new()
            .when(compares)
            .and_then(ops(&txn.success))
            .or_else(ops(&txn.failure));
        let mut kv = self.client.kv_client();
        let resp = self
            .deadline(async {
                kv.txn(request)
                    .await
                    .map_err(map_err("commit a transaction"))
            })
            .await?;
        Ok(TxnResponse {
            succeeded: resp.succeeded(),
            revision: header_revision(resp.header()),
        })
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream> {
        let next = if from <= 0 {
            self.current_revision().await? + 1
        } else {
            from
        };
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(follow(self.client.clone(), prefix.to_owned(), next, tx));
        Ok(Box::pin(ReceiverStream::new(rx)))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let mut kv = self.client.kv_client();
        let resp = self
            .deadline(async {
                kv.compact(revision, Some(CompactionOptions::new().with_physical()))
                    .await
                    .map_err(map_err("compact"))
            })
            .await;
        match resp {
            Ok(_) => Ok(()),
            Err(e)
                if e.to_string().contains("compacted")
                    || format!("{e:?}").contains("compacted") =>
            {
                Err(Error::Compacted {
                    requested: revision,
                    compacted: revision,
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn current_revision(&self) -> Result<Revision> {
        let mut kv = self.client.kv_client();
        let resp = self
            .deadline(async {
                kv.get(
                    yunshu_core::keys::ROOT,
                    Some(GetOptions::new().with_count_only()),
                )
                .await
                .map_err(map_err("read the revision"))
            })
            .await?;
        Ok(header_revision(resp.header()))
    }

    async fn lease_grant(&self, ttl: Duration) -> Result<LeaseId> {
        let secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let mut lease = self.client.lease_client();
        let resp = self
            .deadline(async {
                lease
                    .grant(secs, None)
                    .await
                    .map_err(map_err("grant a lease"))
            })
            .await?;
        Ok(resp.id())
    }

    async fn lease_keep_alive(&self, id: LeaseId) -> Result<Duration> {
        let mut lease = self.client.lease_client();
        let ttl = self
            .deadline(async {
                let (mut keeper, mut stream) = lease
                    .keep_alive(id)
                    .await
                    .map_err(map_err("keep a lease alive"))?;
                keeper
                    .keep_alive()
                    .await
                    .map_err(map_err("keep a lease alive"))?;
                let resp = stream
                    .message()
                    .await
                    .map_err(map_err("keep a lease alive"))?;
                Ok(resp.map_or(0, |r| r.ttl()))
            })
            .await?;
        if ttl <= 0 {
            return Err(Error::not_found(format!("lease {id}")));
        }
        Ok(Duration::from_secs(u64::try_from(ttl).unwrap_or(0)))
    }

    async fn lease_revoke(&self, id: LeaseId) -> Result<()> {
        let mut lease = self.client.lease_client();
        self.deadline(async { lease.revoke(id).await.map_err(map_err("revoke a lease")) })
            .await
            .map(|_| ())
    }
}

/// The largest watch response accepted. etcd sends a catching-up watcher
/// whole revisions in one response; fragmenting them would split a
/// revision across responses and break resuming at revision + 1, so the
/// limit is raised instead.
const MAX_WATCH_RESPONSE: usize = 1 << 30;

/// Follows a prefix from `next`, reconnecting after disconnects.
async fn follow(
    client: Client,
    prefix: String,
    mut next: Revision,
    tx: mpsc::Sender<Result<WatchEvent>>,
) {
    let mut backoff = Duration::from_millis(50);
    let mut failures = 0u32;
    loop {
        if tx.is_closed() {
            return;
        }
        let options = WatchOptions::new().with_prefix().with_start_revision(next);
        let mut watch_client = client
            .watch_client()
            .max_decoding_message_size(MAX_WATCH_RESPONSE);
        let mut stream = match watch_client.watch(prefix.as_str(), Some(options)).await {
            Ok(s) => s,
            Err(e) => {
                failures += 1;
                if failures.is_multiple_of(20) {
                    tracing::warn!(error = %e, %prefix, next, failures, "etcd watch keeps failing to open; retrying");
                } else {
                    tracing::debug!(error = %e, %prefix, next, "failed to open etcd watch; retrying");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        loop {
            match stream.message().await {
                Ok(Some(resp)) => {
                    if resp.canceled() {
                        if resp.compact_revision() > 0 {
                            let _ = tx
                                .send(Err(Error::Compacted {
                                    requested: next,
                                    compacted: resp.compact_revision(),
                                }))
                                .await;
                            return;
                        }
                        tracing::debug!(
                            reason = resp.cancel_reason(),
                            "etcd canceled the watch; reopening"
                        );
                        break;
                    }
                    backoff = Duration::from_millis(50);
                    failures = 0;
                    for ev in resp.events() {
                        let Some(kv) = ev.kv() else { continue };
                        let mut kv = convert_kv(kv);
                        let kind = match ev.event_type() {
                            EventType::Put => EventKind::Put,
                            EventType::Delete => {
                                kv.value.clear();
                                EventKind::Delete
                            }
                        };
                        next = next.max(kv.mod_revision + 1);
                        if tx.send(Ok(WatchEvent { kind, kv })).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    failures += 1;
                    if failures.is_multiple_of(20) {
                        tracing::warn!(error = %e, %prefix, next, failures, "etcd watch keeps disconnecting; resuming");
                    } else {
                        tracing::debug!(error = %e, %prefix, next, "etcd watch disconnected; resuming");
                    }
                    break;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
