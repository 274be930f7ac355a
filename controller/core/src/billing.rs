//! Bills: what each department's use of each foundation costs.
//!
//! **Metering.** Once a minute by default (`--meter-interval`) the leading
//! replica reads what the scheduler has committed to each department on
//! each foundation (its allocations, the same figures as per-foundation
//! quota use) and adds, for every resource class, the units held times the
//! seconds since the department was last metered to the department's
//! [`Ledger`] of the month, at [`keys::bill`](crate::keys::bill). Where the metering
//! is up to is kept per department at [`keys::meter`](crate::keys::meter), written in the same
//! guarded transaction as the ledger, so a crash or a second replica never
//! counts a second twice. An interval that spans the turn of a month is
//! split between the two months (UTC). A department is metered from its
//! first meter run, which comes within one interval of its creation.
//!
//! **Pricing.** Each second is priced as it is metered, at the tariff of
//! the foundation (its price per unit-hour of each class, the same figures
//! placement's cost score and DryRun quote), so a tariff change applies
//! from then on and never to what was already used. Amounts are kept in
//! billionths of the currency's unit (`--currency`, CNY by default).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    resources::{ResourceClass, Resources},
};

/// What one class on one foundation accrued in a month. Both figures can
/// pass `u64` (bucket bytes × seconds), so they are stored as decimal
/// strings: JSON readers lose precision above 2^53.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Accrued {
    /// Units held × seconds, in the class's own unit (vCPU-seconds,
    /// MiB-seconds of memory, GiB-seconds of disk and volumes,
    /// bucket-seconds, byte-seconds of bucket capacity).
    #[serde(with = "decimal")]
    pub unit_seconds: u128,
    /// Their cost at the tariff in force when each was metered, in
    /// 10^-18 of the currency's unit, fine enough that a small holding
    /// metered every second is not rounded away.
    #[serde(with = "decimal")]
    pub attos: u128,
}

/// 10^-18 of a currency unit per billionth.
pub const ATTOS_PER_NANO: u128 = 1_000_000_000;

/// A `u128` as a decimal string.
mod decimal {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(n: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&n.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

/// A department's metered use in one month, per foundation and class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ledger {
    /// The month, `YYYY-MM` (UTC).
    pub month: String,
    /// The ISO 4217 code of the currency tariffs are in (`--currency`).
    #[serde(default)]
    pub currency: String,
    /// Metered up to here, in seconds since the Unix epoch.
    pub metered_until: i64,
    /// Foundation → class → what accrued.
    #[serde(default)]
    pub usage: BTreeMap<String, BTreeMap<ResourceClass, Accrued>>,
}

impl Ledger {
    /// Adds `seconds` of holding `held` on `foundation`, whose tariff
    /// (price per unit-hour of each class) is `tariff`.
    pub fn add(
        &mut self,
        foundation: &str,
        held: &Resources,
        seconds: i64,
        tariff: &BTreeMap<ResourceClass, f64>,
    ) {
        let seconds = u128::try_from(seconds).unwrap_or(0);
        for class in ResourceClass::ALL {
            let unit_seconds = u128::from(held.get(class)).saturating_mul(seconds);
            if unit_seconds == 0 {
                continue;
            }
            let price = tariff
                .get(&class)
                .copied()
                .filter(|p| p.is_finite() && *p > 0.0)
                .unwrap_or(0.0);
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let attos = (unit_seconds as f64 * price * 1e18 / 3600.0).round() as u128;
            let slot = self
                .usage
                .entry(foundation.to_owned())
                .or_default()
                .entry(class)
                .or_default();
            slot.unit_seconds = slot.unit_seconds.saturating_add(unit_seconds);
            slot.attos = slot.attos.saturating_add(attos);
        }
    }
}

/// Where a department's metering is up to, at [`keys::meter`](crate::keys::meter).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meter {
    /// Metering began here, in seconds since the Unix epoch.
    #[serde(default)]
    pub since: i64,
    /// Metered up to here.
    pub metered_until: i64,
    /// The currency of its ledgers.
    #[serde(default)]
    pub currency: String,
    /// What the department held on each foundation at `metered_until`.
    #[serde(default)]
    pub held: BTreeMap<String, Resources>,
}

impl Meter {
    /// What to bill an interval ending now at: per foundation and class,
    /// the smaller of what was held at its start and what is held now, so
    /// a long interval (a failover, controllers down) charges only for what
    /// was there at both ends; what came and went within one interval is
    /// not billed.
    pub fn billable(&self, now: &BTreeMap<String, Resources>) -> BTreeMap<String, Resources> {
        let mut out = BTreeMap::new();
        for (foundation, then) in &self.held {
            let Some(now) = now.get(foundation) else {
                continue;
            };
            let mut both = Resources::ZERO;
            for class in ResourceClass::ALL {
                both.set(class, then.get(class).min(now.get(class)));
            }
            if !both.is_zero() {
                out.insert(foundation.clone(), both);
            }
        }
        out
    }
}

/// Checks an ISO 4217 currency code: three capital letters.
pub fn check_currency(code: &str) -> std::result::Result<(), String> {
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(format!(
            "`{code}` is not an ISO 4217 currency code like CNY"
        ))
    }
}

/// The month (`YYYY-MM`, UTC) a time falls in.
pub fn month_of(unix: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix, 0)
        .unwrap_or_default()
        .format("%Y-%m")
        .to_string()
}

/// Checks a `YYYY-MM` month.
pub fn parse_month(month: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
        .ok()
        .filter(|_| month.len() == 7)
        .ok_or_else(|| Error::invalid("month", format!("`{month}` is not a month like 2026-11")))
}

/// The first second of a `YYYY-MM` month and of the month after it.
pub fn month_bounds(month: &str) -> Result<(i64, i64)> {
    let start = parse_month(month)?
        .and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp());
    Ok((start, next_month(start)))
}

/// The first second of the month after the one `unix` falls in.
fn next_month(unix: i64) -> i64 {
    let day = DateTime::<Utc>::from_timestamp(unix, 0)
        .unwrap_or_default()
        .date_naive();
    let (y, m) = if day.month() == 12 {
        (day.year() + 1, 1)
    } else {
        (day.year(), day.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(i64::MAX, |t| t.and_utc().timestamp())
}

/// Splits `[from, to)` at the turns of months: `(month, seconds)` pairs.
pub fn by_month(from: i64, to: i64) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        let end = next_month(at).min(to);
        out.push((month_of(at), end - at));
        at = end;
    }
    out
}

/// The unit a class is billed in: how many of the class's own units make
/// one, and its name per hour.
pub const fn billing_unit(class: ResourceClass) -> (u128, &'static str) {
    match class {
        ResourceClass::Vcpu => (1, "vCPU-hours"),
        ResourceClass::MemoryMib => (1024, "GiB-hours"),
        ResourceClass::DiskGib | ResourceClass::VolumeGib => (1, "GiB-hours"),
        ResourceClass::Buckets => (1, "bucket-hours"),
        ResourceClass::BucketBytes => (1 << 30, "GiB-hours"),
    }
}

/// One line of a bill.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The foundation.
    pub foundation: String,
    /// The class.
    pub class: ResourceClass,
    /// Billing units × hours ([`billing_unit`]).
    pub quantity: f64,
    /// The average price of one billing unit-hour over the month, in
    /// billionths of the currency's unit.
    pub unit_price: u128,
    /// In billionths of the currency's unit.
    pub amount: u128,
}

/// Attos rounded to the nearest billionth.
const fn nearest_nano(attos: u128) -> u128 {
    attos.saturating_add(ATTOS_PER_NANO / 2) / ATTOS_PER_NANO
}

/// A ledger's lines, one per foundation and class used, and their total in
/// billionths of the currency's unit.
pub fn lines(ledger: &Ledger) -> (Vec<Line>, u128) {
    let mut lines = Vec::new();
    for (foundation, classes) in &ledger.usage {
        for (&class, accrued) in classes {
            let per_hour = 3600 * billing_unit(class).0;
            #[allow(clippy::cast_precision_loss)]
            let quantity = accrued.unit_seconds as f64 / per_hour as f64;
            lines.push(Line {
                foundation: foundation.clone(),
                class,
                quantity,
                unit_price: accrued
                    .attos
                    .checked_mul(per_hour)
                    .and_then(|a| a.checked_div(accrued.unit_seconds))
                    .map_or(0, nearest_nano),
                amount: nearest_nano(accrued.attos),
            });
        }
    }
    let total = lines.iter().map(|l| l.amount).sum();
    (lines, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_split_at_the_turn_of_a_month() {
        // 2026-11-30T23:59:00Z .. 2026-12-01T00:01:00Z
        let from = 1_796_083_140;
        assert_eq!(month_of(from), "2026-11");
        assert_eq!(
            by_month(from, from + 120),
            vec![("2026-11".to_owned(), 60), ("2026-12".to_owned(), 60)]
        );
        // The turn of a year.
        let eve = 1_798_761_540; // 2026-12-31T23:59:00Z
        assert_eq!(
            by_month(eve, eve + 61),
            vec![("2026-12".to_owned(), 60), ("2027-01".to_owned(), 1)]
        );
        assert!(by_month(eve, eve).is_empty());
    }

    #[test]
    fn months_and_currencies_are_checked() {
        assert!(parse_month("2026-11").is_ok());
        assert_eq!(
            month_bounds("2026-12").ok(),
            Some((1_796_083_200, 1_798_761_600))
        );
        for bad in ["2026-13", "2026-1", "26-11", "2026-11-01"] {
            assert!(parse_month(bad).is_err(), "{bad}");
        }
        assert!(check_currency("CNY").is_ok());
        for bad in ["cny", "YUAN", "", "C1Y"] {
            assert!(check_currency(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_second_is_priced_at_its_foundations_tariff() {
        let mut held = Resources::ZERO;
        held.set(ResourceClass::Vcpu, 4);
        held.set(ResourceClass::MemoryMib, 8192);
        let x86 = BTreeMap::from([
            (ResourceClass::Vcpu, 0.10),
            (ResourceClass::MemoryMib, 0.02 / 1024.0),
        ]);
        let kunpeng = BTreeMap::from([(ResourceClass::Vcpu, 0.08)]);
        let mut ledger = Ledger::default();
        // Two hours on x86-1 (one at a doubled vCPU price), one on kunpeng-1,
        // whose memory has no price.
        ledger.add("x86-1", &held, 3600, &x86);
        let mut dearer = x86.clone();
        dearer.insert(ResourceClass::Vcpu, 0.20);
        ledger.add("x86-1", &held, 3600, &dearer);
        ledger.add("kunpeng-1", &held, 3600, &kunpeng);
        let (lines, total) = lines(&ledger);
        let got: Vec<(&str, ResourceClass, f64, u128, u128)> = lines
            .iter()
            .map(|l| {
                (
                    l.foundation.as_str(),
                    l.class,
                    l.quantity,
                    l.unit_price,
                    l.amount,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "kunpeng-1",
                    ResourceClass::Vcpu,
                    4.0,
                    80_000_000,
                    320_000_000
                ),
                ("kunpeng-1", ResourceClass::MemoryMib, 8.0, 0, 0),
                (
                    "x86-1",
                    ResourceClass::Vcpu,
                    8.0,
                    150_000_000,
                    1_200_000_000
                ),
                (
                    "x86-1",
                    ResourceClass::MemoryMib,
                    16.0,
                    20_000_000,
                    320_000_000
                ),
            ]
        );
        assert_eq!(total, 1_840_000_000);
    }

    #[test]
    fn small_holdings_are_not_rounded_away_and_big_ones_survive_json() {
        // 100 MiB of bucket capacity at 0.0001 per GiB-hour, metered every
        // second for a day: each second costs far less than a billionth.
        let mut held = Resources::ZERO;
        held.set(ResourceClass::BucketBytes, 100 << 20);
        let tariff = BTreeMap::from([(ResourceClass::BucketBytes, 0.0001 / f64::from(1u32 << 30))]);
        let mut ledger = Ledger::default();
        for _ in 0..86_400 {
            ledger.add("s3-1", &held, 1, &tariff);
        }
        let (_, total) = lines(&ledger);
        // 0.0001 × 100/1024 GiB × 24 h ≈ 0.000234375.
        assert!((234_370..=234_380).contains(&total), "{total}");

        // 64 TiB for a 31-day month: byte-seconds past u64.
        held.set(ResourceClass::BucketBytes, 64 << 40);
        ledger.add("s3-1", &held, 31 * 86_400, &tariff);
        let bytes = crate::codec::encode(&ledger).expect("encode");
        let back: Ledger = crate::codec::decode("k", &bytes).expect("decode");
        assert_eq!(back, ledger);
        assert!(
            back.usage["s3-1"][&ResourceClass::BucketBytes].unit_seconds > u128::from(u64::MAX)
        );
    }

    #[test]
    fn a_minute_at_a_time_adds_up_to_the_hourly_price() {
        // 4 vCPU at 0.08 metered every minute for 20 hours: 6.40 exactly,
        // though no minute costs a whole number of attos.
        let mut held = Resources::ZERO;
        held.set(ResourceClass::Vcpu, 4);
        let tariff = BTreeMap::from([(ResourceClass::Vcpu, 0.08)]);
        let mut ledger = Ledger::default();
        for _ in 0..1200 {
            ledger.add("kunpeng-1", &held, 60, &tariff);
        }
        let (lines, total) = lines(&ledger);
        assert_eq!((lines[0].unit_price, total), (80_000_000, 6_400_000_000));
    }

    #[test]
    fn an_interval_is_billed_at_what_was_held_throughout() {
        let r = |vcpu: u64| {
            let mut r = Resources::ZERO;
            r.set(ResourceClass::Vcpu, vcpu);
            r
        };
        let meter = Meter {
            held: BTreeMap::from([("a".to_owned(), r(8)), ("b".to_owned(), r(2))]),
            ..Meter::default()
        };
        let now = BTreeMap::from([("a".to_owned(), r(4)), ("c".to_owned(), r(16))]);
        assert_eq!(
            meter.billable(&now),
            BTreeMap::from([("a".to_owned(), r(4))])
        );
    }
}
