//! `DepartmentService`: a department's own view — its quota and usage, and
//! the catalog of what it may request.

use std::collections::BTreeMap;

use tonic::{Request, Response, Status};
use yunshu_core::{
    admission::UsageRecord,
    billing, codec, keys,
    meta::Object,
    model::{Department, FoundationSpec},
    resources::{ResourceClass, Resources},
    store::{RangeRequest, StoreExt},
};
use yunshu_proto::api::v1::{self as pb, department_service_server::DepartmentService};

use crate::{
    Api,
    admin::convert::health,
    authz,
    convert::{class, foundation_name},
    names,
    status::to_status,
};

impl Api {
    pub(crate) async fn department(
        &self,
        p: &yunshu_core::principal::Principal,
        name: &str,
    ) -> Result<Department, Status> {
        let dept = names::parse_cluster_name("department", name, "departments")?;
        authz::read(p, &dept)?;
        let kv = self
            .store
            .get(&keys::department(&dept))
            .await
            .map_err(to_status)?
            .ok_or_else(|| Status::not_found(format!("department {dept} not found")))?;
        codec::decode_object(&kv).map_err(to_status)
    }
}

#[tonic::async_trait]
impl DepartmentService for Api {
    async fn get_quota(
        &self,
        request: Request<pb::GetQuotaRequest>,
    ) -> Result<Response<pb::GetQuotaResponse>, Status> {
        let p = authz::principal(&request)?;
        let dept = self.department(&p, &request.get_ref().department).await?;
        let usage = match self
            .store
            .get(&keys::usage(&dept.meta.name))
            .await
            .map_err(to_status)?
        {
            Some(kv) => {
                codec::decode::<UsageRecord>(&kv.key, &kv.value)
                    .map_err(to_status)?
                    .usage
            }
            None => Resources::ZERO,
        };
        let resources = ResourceClass::ALL
            .into_iter()
            .map(|c| pb::ResourceUsage {
                resource_class: class(c) as i32,
                limit: dept.spec.quota.hard.get(&c).copied(),
                used: usage.get(c),
            })
            .collect();
        // Per-foundation use is what the scheduler committed on each
        // foundation for this department (its allocation record). Every
        // foundation with a limit or with use is listed, and in each every
        // class with a limit or with use.
        let prefix = yunshu_placement::keys::allocations();
        let mut used_on: BTreeMap<String, Resources> = BTreeMap::new();
        for kv in self
            .store
            .range(RangeRequest::prefix(&prefix))
            .await
            .map_err(to_status)?
            .kvs
        {
            let used = codec::decode::<yunshu_placement::AllocationRecord>(&kv.key, &kv.value)
                .map_err(to_status)?
                .department(&dept.meta.name);
            if let Some(f) = kv.key.strip_prefix(&prefix)
                && !used.is_zero()
            {
                used_on.insert(f.to_owned(), used);
            }
        }
        let names: std::collections::BTreeSet<&String> = dept
            .spec
            .quota
            .per_foundation
            .keys()
            .chain(used_on.keys())
            .collect();
        let mut foundations = Vec::new();
        for f in names {
            let limits = dept.spec.quota.per_foundation.get(f);
            let used = used_on.get(f).copied().unwrap_or(Resources::ZERO);
            foundations.push(pb::FoundationUsage {
                foundation: foundation_name(f),
                resources: ResourceClass::ALL
                    .into_iter()
                    .filter_map(|c| {
                        let limit = limits.and_then(|l| l.get(&c).copied());
                        (limit.is_some() || used.get(c) > 0).then(|| pb::ResourceUsage {
                            resource_class: class(c) as i32,
                            limit,
                            used: used.get(c),
                        })
                    })
                    .collect(),
            });
        }
        Ok(Response::new(pb::GetQuotaResponse {
            resources,
            foundations,
        }))
    }

    async fn get_bill(
        &self,
        request: Request<pb::GetBillRequest>,
    ) -> Result<Response<pb::GetBillResponse>, Status> {
        let p = authz::principal(&request)?;
        let dept = self.department(&p, &request.get_ref().department).await?;
        let month = match request.get_ref().month.as_str() {
            "" => billing::month_of(yunshu_core::requests::unix_now()),
            m => m.to_owned(),
        };
        let (start, end) = billing::month_bounds(&month).map_err(to_status)?;
        let name = &dept.meta.name;
        let (ledger_key, meter_key) = (keys::bill(name, &month), keys::meter(name));
        let (ledger, meter) =
            futures::join!(self.store.get(&ledger_key), self.store.get(&meter_key));
        let ledger = match ledger.map_err(to_status)? {
            Some(kv) => codec::decode::<billing::Ledger>(&kv.key, &kv.value).map_err(to_status)?,
            None => billing::Ledger::default(),
        };
        // Metering is up to where the department's meter is, within the
        // month; a month that ended before metering began has none.
        let (until, since, meter_currency) = match meter.map_err(to_status)? {
            Some(kv) => {
                let m = codec::decode::<billing::Meter>(&kv.key, &kv.value).map_err(to_status)?;
                (
                    m.metered_until.max(ledger.metered_until),
                    m.since,
                    m.currency,
                )
            }
            None => (ledger.metered_until, 0, String::new()),
        };
        // The month's own currency; else the meter's; else, before any
        // metering, the one it will be metered in.
        let currency = [&ledger.currency, &meter_currency, &self.currency]
            .into_iter()
            .find(|c| !c.is_empty())
            .cloned()
            .unwrap_or_default();
        let money = |nanos: u128| pb::Money {
            currency_code: currency.clone(),
            units: i64::try_from(nanos / 1_000_000_000).unwrap_or(i64::MAX),
            nanos: i32::try_from(nanos % 1_000_000_000).unwrap_or_default(),
        };
        let (lines, total) = billing::lines(&ledger);
        Ok(Response::new(pb::GetBillResponse {
            lines: lines
                .into_iter()
                .map(|l| pb::BillLine {
                    foundation: foundation_name(&l.foundation),
                    resource_class: class(l.class) as i32,
                    quantity: l.quantity,
                    unit: billing::billing_unit(l.class).1.to_owned(),
                    unit_price: Some(money(l.unit_price)),
                    amount: Some(money(l.amount)),
                })
                .collect(),
            total: Some(money(total)),
            metered_until: ((until > start && end > since) || ledger.metered_until > start)
                .then(|| chrono::DateTime::from_timestamp(until.min(end), 0))
                .flatten()
                .map(crate::convert::timestamp),
            month,
        }))
    }

    async fn get_catalog(
        &self,
        request: Request<pb::GetCatalogRequest>,
    ) -> Result<Response<pb::GetCatalogResponse>, Status> {
        let p = authz::principal(&request)?;
        let dept = self.department(&p, &request.get_ref().department).await?;
        let all = self
            .store
            .range_all(
                &keys::objects(yunshu_core::meta::Kind::Foundation, None),
                200,
            )
            .await
            .map_err(to_status)?;
        let allowed = &dept.spec.allowed_foundations;
        let mut foundations = Vec::new();
        let mut zones: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for kv in &all {
            let f: Object<FoundationSpec> = codec::decode_object(kv).map_err(to_status)?;
            if !allowed.is_empty() && !allowed.contains(&f.meta.name) {
                continue;
            }
            let full = foundation_name(&f.meta.name);
            for z in &f.spec.zones {
                zones.entry(z.clone()).or_default().push(full.clone());
            }
            // What placement goes by: the kinds the last probe reported,
            // else those of the adapter kind (none yet for a remote one).
            let served = if f.status.kinds.is_empty() {
                yunshu_placement::adapter_kinds(f.spec.adapter)
            } else {
                &f.status.kinds
            };
            let kinds: Vec<pb::ResourceKind> = served
                .iter()
                .filter_map(|k| match k {
                    yunshu_core::meta::Kind::Instance => Some(pb::ResourceKind::Instance),
                    yunshu_core::meta::Kind::Volume => Some(pb::ResourceKind::Volume),
                    yunshu_core::meta::Kind::Bucket => Some(pb::ResourceKind::Bucket),
                    _ => None,
                })
                .collect();
            foundations.push(pb::CatalogFoundation {
                name: full,
                architecture: f
                    .spec
                    .traits
                    .iter()
                    .find(|t| t.key() == "arch")
                    .and_then(|t| t.value())
                    .unwrap_or_default()
                    .to_owned(),
                traits: f.spec.traits.iter().map(ToString::to_string).collect(),
                zones: f.spec.zones.clone(),
                kinds: kinds.into_iter().map(|k| k as i32).collect(),
                health: health(f.status.health) as i32,
            });
        }
        Ok(Response::new(pb::GetCatalogResponse {
            sizes: self
                .catalog
                .sizes
                .iter()
                .map(|s| pb::CatalogSize {
                    name: s.name.clone(),
                    vcpu: s.vcpu,
                    memory_mib: s.memory_mib,
                    description: s.description.clone(),
                })
                .collect(),
            images: self
                .catalog
                .images
                .iter()
                .map(|i| pb::CatalogImage {
                    name: i.name.clone(),
                    description: i.description.clone(),
                    architectures: i.architectures.clone(),
                })
                .collect(),
            zones: zones
                .into_iter()
                .map(|(name, foundations)| pb::CatalogZone { name, foundations })
                .collect(),
            foundations,
        }))
    }
}
