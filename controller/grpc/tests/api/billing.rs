//! GetBill: a month's metered use, priced at each foundation's tariff.

use std::collections::BTreeMap;

use tonic::Code;
use tonic_types::StatusExt;
use yunshu_core::{
    billing::{Ledger, Meter},
    codec, keys,
    resources::{ResourceClass, Resources},
    store::{Op, Txn},
};
use yunshu_proto::api::v1::{self as pb, department_service_client::DepartmentServiceClient};

use crate::common::{ALICE, as_, department, start};

fn bill(department: &str, month: &str) -> pb::GetBillRequest {
    pb::GetBillRequest {
        department: format!("departments/{department}"),
        month: month.into(),
    }
}

fn money(m: Option<&pb::Money>) -> (i64, i32) {
    m.map_or((-1, -1), |m| (m.units, m.nanos))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_is_priced_per_foundation_and_class() {
    let s = start().await;
    department(&*s.store, "health", 48).await;
    department(&*s.store, "transport", 16).await;
    // Two hours of 4 vCPU and 8 GiB on x86-1, one on kunpeng-1 (cheaper
    // vCPUs there), metered up to 2026-11-20T00:00:00Z.
    let mut held = Resources::ZERO;
    held.set(ResourceClass::Vcpu, 4);
    held.set(ResourceClass::MemoryMib, 8192);
    let until = 1_795_132_800;
    let mut ledger = Ledger {
        month: "2026-11".into(),
        currency: "CNY".into(),
        metered_until: until,
        ..Ledger::default()
    };
    let x86 = BTreeMap::from([
        (ResourceClass::Vcpu, 0.10),
        (ResourceClass::MemoryMib, 0.02 / 1024.0),
    ]);
    let kunpeng = BTreeMap::from([
        (ResourceClass::Vcpu, 0.08),
        (ResourceClass::MemoryMib, 0.02 / 1024.0),
    ]);
    ledger.add("x86-1", &held, 7200, &x86);
    ledger.add("kunpeng-1", &held, 3600, &kunpeng);
    s.store
        .txn(
            Txn::new().and_then([
                Op::put(
                    keys::bill("health", "2026-11"),
                    codec::encode(&ledger).expect("encode"),
                ),
                Op::put(
                    keys::meter("health"),
                    codec::encode(&Meter {
                        since: 1_793_491_200, // 2026-11-01T00:00:00Z
                        metered_until: until,
                        currency: "CNY".into(),
                        ..Meter::default()
                    })
                    .expect("encode"),
                ),
            ]),
        )
        .await
        .expect("write");

    let mut c = DepartmentServiceClient::new(s.channel.clone());
    let got = c
        .get_bill(as_(ALICE, bill("health", "2026-11")))
        .await
        .expect("bill")
        .into_inner();
    assert_eq!(got.month, "2026-11");
    type Row<'a> = (&'a str, i32, f64, &'a str, (i64, i32), (i64, i32));
    let lines: Vec<Row> = got
        .lines
        .iter()
        .map(|l| {
            (
                l.foundation.as_str(),
                l.resource_class,
                l.quantity,
                l.unit.as_str(),
                money(l.unit_price.as_ref()),
                money(l.amount.as_ref()),
            )
        })
        .collect();
    let (vcpu, memory) = (
        pb::ResourceClass::Vcpu as i32,
        pb::ResourceClass::MemoryMib as i32,
    );
    assert_eq!(
        lines,
        vec![
            (
                "foundations/kunpeng-1",
                vcpu,
                4.0,
                "vCPU-hours",
                (0, 80_000_000),
                (0, 320_000_000)
            ),
            (
                "foundations/kunpeng-1",
                memory,
                8.0,
                "GiB-hours",
                (0, 20_000_000),
                (0, 160_000_000)
            ),
            (
                "foundations/x86-1",
                vcpu,
                8.0,
                "vCPU-hours",
                (0, 100_000_000),
                (0, 800_000_000)
            ),
            (
                "foundations/x86-1",
                memory,
                16.0,
                "GiB-hours",
                (0, 20_000_000),
                (0, 320_000_000)
            ),
        ]
    );
    assert_eq!(money(got.total.as_ref()), (1, 600_000_000));
    assert_eq!(got.total.map(|t| t.currency_code).as_deref(), Some("CNY"));
    assert_eq!(got.metered_until.map(|t| t.seconds), Some(until));

    // A month with nothing in it.
    let empty = c
        .get_bill(as_(ALICE, bill("health", "2026-10")))
        .await
        .expect("bill")
        .into_inner();
    assert!(empty.lines.is_empty());
    assert_eq!(money(empty.total.as_ref()), (0, 0));
    assert_eq!(empty.metered_until, None, "metering began in November");
    let ahead = c
        .get_bill(as_(ALICE, bill("health", "2026-12")))
        .await
        .expect("bill")
        .into_inner();
    assert_eq!(ahead.metered_until, None, "December is not metered yet");

    // A department never metered yet is billed nothing, in the currency
    // it will be metered in.
    let unmetered = c
        .get_bill(as_("transport:operator:bob", bill("transport", "2026-11")))
        .await
        .expect("bill")
        .into_inner();
    assert_eq!(money(unmetered.total.as_ref()), (0, 0));
    assert_eq!(
        unmetered.total.map(|t| t.currency_code).as_deref(),
        Some("CNY")
    );

    // Viewers and admins read it; other departments cannot see it.
    for who in ["health:viewer:v", "platform:admin:root"] {
        c.get_bill(as_(who, bill("health", "2026-11")))
            .await
            .unwrap_or_else(|e| panic!("{who}: {e:?}"));
    }
    let err = c
        .get_bill(as_("transport:operator:bob", bill("health", "2026-11")))
        .await
        .expect_err("another department's bill");
    assert_eq!(err.code(), Code::NotFound);

    // A malformed month names the field.
    let err = c
        .get_bill(as_(ALICE, bill("health", "2026-13")))
        .await
        .expect_err("no 13th month");
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields: Vec<String> = err
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default();
    assert_eq!(fields, ["month"]);
}
