//! Listing what the scheduler watches, paged, with the revision a watch
//! must resume from so that nothing between the pages is missed.

use std::sync::Arc;

use yunshu_core::{
    Result,
    keys::objects_of_kind,
    meta::Kind,
    store::{EventKind, KeyValue, RangeRequest, Revision, Store},
};

use crate::{cache::Cache, keys};

/// Keys per page.
const PAGE: usize = 500;

/// Every key under `prefix` and the revision of the first page (the oldest
/// view in the list: a watch from just after it sees every later change).
pub async fn list(store: &dyn Store, prefix: &str) -> Result<(Vec<KeyValue>, Revision)> {
    let mut out = Vec::new();
    let mut request = RangeRequest::prefix(prefix).with_limit(PAGE);
    let mut first = None;
    loop {
        let resp = store.range(request.clone()).await?;
        first.get_or_insert(resp.revision);
        let last = resp.kvs.last().map(|kv| kv.key.clone());
        out.extend(resp.kvs);
        match (resp.more, last) {
            (true, Some(last)) => request = request.after(last),
            _ => return Ok((out, first.unwrap_or_default())),
        }
    }
}

/// The prefixes of the admin kinds and allocations the [`Cache`] keeps.
pub fn cache_prefixes() -> [String; 4] {
    [
        objects_of_kind(Kind::Foundation),
        objects_of_kind(Kind::Department),
        objects_of_kind(Kind::PlacementPolicy),
        keys::allocations(),
    ]
}

/// The prefixes of the department resources placement schedules.
pub fn workload_prefixes() -> [String; 3] {
    [
        objects_of_kind(Kind::Instance),
        objects_of_kind(Kind::Volume),
        objects_of_kind(Kind::Bucket),
    ]
}

/// A cache filled from the store, and the revision to watch after.
pub async fn load_cache(store: &Arc<dyn Store>) -> Result<(Cache, Revision)> {
    let mut cache = Cache::default();
    let mut since = Revision::MAX;
    for prefix in cache_prefixes() {
        let (kvs, revision) = list(&**store, &prefix).await?;
        since = since.min(revision);
        for kv in &kvs {
            cache.apply(EventKind::Put, kv);
        }
    }
    Ok((cache, since))
}
