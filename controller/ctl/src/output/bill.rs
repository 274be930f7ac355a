//! `yunshuctl bill`: a month's metered use and what it cost.

use std::io::{self, Write};

use serde::Serialize;
use yunshu_proto::api::v1::{self as pb, ResourceClass};

use super::department::class_name;
use crate::{resource::short_foundation, table::Table};

/// `GetBillResponse` as JSON/YAML; amounts are exact decimal strings.
#[derive(Debug, Clone, Serialize)]
pub struct BillView {
    /// `YYYY-MM`.
    pub month: String,
    /// The ISO 4217 currency code.
    pub currency: String,
    /// One line per foundation and class used.
    pub lines: Vec<BillLineView>,
    /// The sum of the lines.
    pub total: String,
    /// RFC 3339; `null` when nothing was metered in the month.
    pub metered_until: Option<String>,
}

/// One line of a bill.
#[derive(Debug, Clone, Serialize)]
pub struct BillLineView {
    /// `foundations/{name}`.
    pub foundation: String,
    /// `vcpu`, `memory_mib`, `disk_gib`, `volume_gib`, `buckets`, `bucket_bytes`.
    pub resource_class: &'static str,
    /// Billing units times hours.
    pub quantity: f64,
    /// What the quantity counts, e.g. `vCPU-hours`.
    pub unit: String,
    /// The price of one.
    pub unit_price: String,
    /// `quantity` × `unit_price`.
    pub amount: String,
}

/// An amount as an exact decimal: `1.6`, `0.000000001`, `12`.
fn exact(m: Option<&pb::Money>) -> String {
    let (units, nanos) = m.map_or((0, 0), |m| (m.units, m.nanos));
    let frac = format!("{:09}", nanos.unsigned_abs());
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        units.to_string()
    } else {
        format!("{units}.{frac}")
    }
}

/// An amount for people: to the cent, at least.
fn cents(amount: &str) -> String {
    match amount.split_once('.') {
        None => format!("{amount}.00"),
        Some((_, frac)) if frac.len() < 2 => format!("{amount}{}", "0".repeat(2 - frac.len())),
        Some(_) => amount.to_owned(),
    }
}

impl From<&pb::GetBillResponse> for BillView {
    fn from(b: &pb::GetBillResponse) -> Self {
        Self {
            month: b.month.clone(),
            currency: b
                .total
                .as_ref()
                .map(|t| t.currency_code.clone())
                .unwrap_or_default(),
            lines: b
                .lines
                .iter()
                .map(|l| BillLineView {
                    foundation: l.foundation.clone(),
                    resource_class: class_name(
                        ResourceClass::try_from(l.resource_class).unwrap_or_default(),
                    ),
                    quantity: l.quantity,
                    unit: l.unit.clone(),
                    unit_price: exact(l.unit_price.as_ref()),
                    amount: exact(l.amount.as_ref()),
                })
                .collect(),
            total: exact(b.total.as_ref()),
            metered_until: b.metered_until.as_ref().and_then(|t| {
                chrono::DateTime::from_timestamp(t.seconds, 0)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            }),
        }
    }
}

/// Writes the bill: a line per foundation and class, then the total.
pub fn render_bill(b: &BillView, w: &mut dyn Write) -> io::Result<()> {
    let mut t = Table::new(["FOUNDATION", "RESOURCE", "QUANTITY", "UNIT PRICE", "AMOUNT"]);
    for l in &b.lines {
        t.row([
            short_foundation(&l.foundation).to_owned(),
            l.resource_class.to_owned(),
            format!("{:.2} {}", l.quantity, l.unit),
            l.unit_price.clone(),
            cents(&l.amount),
        ]);
    }
    t.render(w)?;
    let until = b.metered_until.as_deref().map_or_else(
        || "nothing metered yet".to_owned(),
        |u| format!("metered until {u}"),
    );
    writeln!(
        w,
        "\nTotal {}: {} {} ({until})",
        b.month,
        cents(&b.total),
        b.currency
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(units: i64, nanos: i32) -> Option<pb::Money> {
        Some(pb::Money {
            currency_code: "CNY".into(),
            units,
            nanos,
        })
    }

    #[test]
    fn bills_print_as_a_table_and_exact_json() {
        let b = pb::GetBillResponse {
            month: "2026-11".into(),
            lines: vec![pb::BillLine {
                foundation: "foundations/kunpeng-1".into(),
                resource_class: ResourceClass::Vcpu as i32,
                quantity: 4.0,
                unit: "vCPU-hours".into(),
                unit_price: money(0, 80_000_000),
                amount: money(0, 320_000_000),
            }],
            total: money(1, 600_000_001),
            metered_until: Some(prost_types::Timestamp {
                seconds: 1_795_132_800,
                nanos: 0,
            }),
        };
        let view = BillView::from(&b);
        assert_eq!(view.total, "1.600000001");
        let mut out = Vec::new();
        render_bill(&view, &mut out).expect("render");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "FOUNDATION   RESOURCE   QUANTITY          UNIT PRICE   AMOUNT\n\
             kunpeng-1    vcpu       4.00 vCPU-hours   0.08         0.32\n\
             \n\
             Total 2026-11: 1.600000001 CNY (metered until 2026-11-20T00:00:00Z)\n"
        );
        assert_eq!(exact(money(12, 0).as_ref()), "12");
        assert_eq!(cents("12"), "12.00");
    }
}
