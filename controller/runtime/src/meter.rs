//! The meter: accrues what every department holds on every foundation, at
//! the foundation's tariff, into its monthly ledgers, for bills (see
//! [`yunshu_core::billing`]).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use tokio::sync::watch;
use yunshu_core::{
    Result,
    billing::{Ledger, Meter, by_month},
    codec, keys,
    meta::{Kind, Object},
    model::FoundationSpec,
    resources::{ResourceClass, Resources},
    store::{Compare, Op, Store, StoreExt, Txn},
};
use yunshu_placement::AllocationRecord;

use crate::reconcile::ReconcileMetrics;

/// Department → foundation → what the scheduler committed to it there.
type Held = BTreeMap<String, BTreeMap<String, Resources>>;

/// Foundation → its tariff (price per unit-hour of each class).
type Tariffs = BTreeMap<String, BTreeMap<ResourceClass, f64>>;

async fn tariffs(store: &dyn Store) -> Result<Tariffs> {
    let mut tariffs = Tariffs::new();
    for kv in store
        .range_all(&keys::objects(Kind::Foundation, None), 200)
        .await?
    {
        let f: Object<FoundationSpec> = codec::decode_object(&kv)?;
        tariffs.insert(f.meta.name, f.spec.tariff);
    }
    Ok(tariffs)
}

async fn held(store: &dyn Store) -> Result<Held> {
    let prefix = yunshu_placement::keys::allocations();
    let mut held = Held::new();
    for kv in store.range_all(&prefix, 200).await? {
        let Some(foundation) = kv.key.strip_prefix(&prefix) else {
            continue;
        };
        let record: AllocationRecord = codec::decode(&kv.key, &kv.value)?;
        for (department, used) in record.departments {
            if !used.is_zero() {
                held.entry(department)
                    .or_default()
                    .insert(foundation.to_owned(), used);
            }
        }
    }
    Ok(held)
}

/// Meters every department up to `now` (seconds since the Unix epoch), in
/// `currency`; returns how many were metered. A department metered for the
/// first time starts at `now`. A foundation deleted since (which needs
/// nothing left allocated on it) has no tariff: its last moments are free.
/// One department failing (its ledger unreadable, say) does not stop the
/// others; the last failure is returned once all were tried.
pub async fn meter(store: &dyn Store, now: i64, currency: &str) -> Result<usize> {
    let held = held(store).await?;
    let tariffs = tariffs(store).await?;
    let names = |prefix: String| async move {
        Ok::<_, yunshu_core::Error>(
            store
                .range_all(&prefix, 200)
                .await?
                .into_iter()
                .filter_map(|kv| kv.key.strip_prefix(&prefix).map(str::to_owned))
                .collect::<std::collections::BTreeSet<String>>(),
        )
    };
    let existing = names(keys::objects(Kind::Department, None)).await?;
    // A department deleted while it still held something is metered too,
    // and one with a meter left is metered once more, to close it.
    let mut departments = names(keys::meters()).await?;
    departments.extend(existing.iter().cloned());
    departments.extend(held.keys().cloned());
    let none = BTreeMap::new();
    let (mut metered, mut failed) = (0, None);
    for department in departments {
        let held = held.get(&department).unwrap_or(&none);
        let gone = !existing.contains(&department);
        // A lost race means another replica metered it just now.
        match meter_one(store, &department, held, gone, &tariffs, now, currency).await {
            Ok(done) => metered += usize::from(done),
            Err(e) => {
                tracing::warn!(department, error = %e, "metering a department failed");
                failed = Some(e);
            }
        }
    }
    failed.map_or(Ok(metered), Err)
}

/// Meters one department from where it was metered up to `now`, in one
/// transaction guarded by the revisions it read. The meter of a department
/// that is `gone` and held nothing since the last run is removed, so one
/// made again under the name starts afresh.
#[allow(clippy::too_many_arguments)]
async fn meter_one(
    store: &dyn Store,
    department: &str,
    held: &BTreeMap<String, Resources>,
    gone: bool,
    tariffs: &Tariffs,
    now: i64,
    currency: &str,
) -> Result<bool> {
    let meter_key = keys::meter(department);
    let put_meter = |since| {
        Ok::<_, yunshu_core::Error>(Op::put(
            &meter_key,
            codec::encode(&Meter {
                since,
                metered_until: now,
                currency: currency.to_owned(),
                held: held.clone(),
            })?,
        ))
    };
    let Some(kv) = store.get(&meter_key).await? else {
        let txn = Txn::new()
            .when([Compare::absent(&meter_key)])
            .and_then([put_meter(now)?]);
        return Ok(store.txn(txn).await?.succeeded);
    };
    let last = codec::decode::<Meter>(&kv.key, &kv.value)?;
    if now <= last.metered_until {
        return Ok(false);
    }
    if last.currency != currency {
        return Err(yunshu_core::Error::internal(format!(
            "{department} is billed in {}, but --currency is {currency}; \
             set it back (bills in another currency need their ledgers converted)",
            last.currency
        )));
    }
    let mut compares = vec![Compare::unchanged(&meter_key, kv.mod_revision)];
    if gone && held.is_empty() && last.held.is_empty() {
        let txn = Txn::new().when(compares).and_then([Op::delete(&meter_key)]);
        return Ok(store.txn(txn).await?.succeeded);
    }
    let mut ops = vec![put_meter(last.since)?];
    let billable = last.billable(held);
    if !billable.is_empty() {
        let mut start = last.metered_until;
        let free = BTreeMap::new();
        for (month, seconds) in by_month(last.metered_until, now) {
            let key = keys::bill(department, &month);
            let (mut ledger, revision) = match store.get(&key).await? {
                Some(kv) => {
                    let ledger = codec::decode::<Ledger>(&kv.key, &kv.value)?;
                    if !ledger.currency.is_empty() && ledger.currency != currency {
                        return Err(yunshu_core::Error::internal(format!(
                            "{department}'s bill for {} is in {}, but --currency is {currency}",
                            ledger.month, ledger.currency
                        )));
                    }
                    (ledger, kv.mod_revision)
                }
                None => (
                    Ledger {
                        month,
                        currency: currency.to_owned(),
                        ..Ledger::default()
                    },
                    0,
                ),
            };
            for (foundation, used) in &billable {
                ledger.add(
                    foundation,
                    used,
                    seconds,
                    tariffs.get(foundation).unwrap_or(&free),
                );
            }
            start += seconds;
            ledger.metered_until = start;
            compares.push(Compare::unchanged(&key, revision));
            ops.push(Op::put(&key, codec::encode(&ledger)?));
        }
    }
    Ok(store
        .txn(Txn::new().when(compares).and_then(ops))
        .await?
        .succeeded)
}

/// Meters every `interval` until `stop`.
pub async fn run(
    store: Arc<dyn Store>,
    interval: Duration,
    currency: String,
    metrics: Arc<ReconcileMetrics>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    while crate::singleton::pause(interval, &mut stop).await {
        if let Err(e) = meter(&*store, yunshu_core::requests::unix_now(), &currency).await {
            metrics.error("meter", e.kind());
            tracing::warn!(error = %e, "metering failed");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use yunshu_core::resources::ResourceClass;
    use yunshu_store::EmbeddedStore;

    use super::*;

    async fn put(store: &dyn Store, key: &str, value: Vec<u8>) -> Result<()> {
        store
            .txn(Txn::new().and_then([Op::put(key, value)]))
            .await?;
        Ok(())
    }

    /// What each department holds on x86-1, in vCPUs.
    async fn allocate(store: &dyn Store, vcpus: &[(&str, u64)]) -> anyhow::Result<()> {
        let mut record = AllocationRecord::default();
        for &(department, vcpu) in vcpus {
            let mut r = Resources::ZERO;
            r.set(ResourceClass::Vcpu, vcpu);
            record = record
                .plus(department, &r)
                .ok_or_else(|| anyhow::anyhow!("overflow"))?;
        }
        let key = yunshu_placement::keys::allocation("x86-1");
        put(store, &key, codec::encode(&record)?).await?;
        Ok(())
    }

    async fn ledger(store: &dyn Store, department: &str, month: &str) -> Result<Ledger> {
        let kv = store
            .get(&keys::bill(department, month))
            .await?
            .ok_or_else(|| yunshu_core::Error::internal("no ledger"))?;
        codec::decode(&kv.key, &kv.value)
    }

    #[tokio::test]
    async fn accrues_what_is_held_once_per_second_across_a_month_turn() -> anyhow::Result<()> {
        let store = EmbeddedStore::in_memory()?;
        allocate(&store, &[("health", 4), ("transport", 4)]).await?;
        put(&store, &keys::department("health"), b"{}".to_vec()).await?;
        let spec: FoundationSpec = serde_json::from_value(serde_json::json!({
            "adapter": "openstack",
            "endpoint": "http://127.0.0.1:5000/v3",
            "tariff": {"vcpu": 0.5}
        }))?;
        let x86 = Object::new(None, "x86-1", spec);
        put(
            &store,
            &keys::object(Kind::Foundation, None, "x86-1"),
            codec::encode(&x86)?,
        )
        .await?;

        // 2026-11-30T23:00:00Z: the first run starts the meters.
        let t0 = 1_796_079_600;
        assert_eq!(meter(&store, t0, "CNY").await?, 2);
        assert!(store.get(&keys::bill("health", "2026-11")).await?.is_none());
        // At 23:30, then at 00:30 (half an hour each side of midnight).
        let t_half = t0 + 1800;
        let t1 = t0 + 5400;
        assert_eq!(meter(&store, t_half, "CNY").await?, 2);
        assert_eq!(meter(&store, t1, "CNY").await?, 2);
        // Again at the same second: nothing more is counted.
        assert_eq!(meter(&store, t1, "CNY").await?, 0);
        let nov = ledger(&store, "health", "2026-11").await?;
        let dec = ledger(&store, "health", "2026-12").await?;
        // 4 vCPU for an hour at 0.5 a vCPU-hour: 2.
        let two = 2 * 10u128.pow(18);
        let nov_vcpu = nov.usage["x86-1"][&ResourceClass::Vcpu];
        assert_eq!((nov_vcpu.unit_seconds, nov_vcpu.attos), (4 * 3600, two));
        let dec_vcpu = dec.usage["x86-1"][&ResourceClass::Vcpu];
        assert_eq!((dec_vcpu.unit_seconds, dec_vcpu.attos), (4 * 1800, two / 2));
        assert_eq!(nov.currency, "CNY");
        assert_eq!(nov.metered_until, t0 + 3600);
        assert_eq!(dec.metered_until, t1);
        // transport holds the same but has no department object any more.
        assert_eq!(
            ledger(&store, "transport", "2026-12").await?,
            Ledger {
                metered_until: t1,
                ..dec
            }
        );

        // A department placed mid-interval is billed from the next run on;
        // another currency is refused, not mixed into the month.
        allocate(&store, &[("health", 8)]).await?;
        // transport, gone, holds nothing now: metered once more (nothing
        // was held throughout), then its meter is closed.
        assert_eq!(meter(&store, t1 + 60, "CNY").await?, 2);
        let dec = ledger(&store, "health", "2026-12").await?;
        assert_eq!(
            dec.usage["x86-1"][&ResourceClass::Vcpu].unit_seconds,
            4 * 1800 + 4 * 60
        );
        assert!(store.get(&keys::meter("transport")).await?.is_some());
        assert_eq!(meter(&store, t1 + 90, "CNY").await?, 2);
        assert!(store.get(&keys::meter("transport")).await?.is_none());
        let dec = ledger(&store, "health", "2026-12").await?;
        let err = meter(&store, t1 + 120, "EUR")
            .await
            .expect_err("another currency");
        assert!(err.to_string().contains("--currency is EUR"), "{err}");
        assert_eq!(ledger(&store, "health", "2026-12").await?, dec);
        Ok(())
    }
}
