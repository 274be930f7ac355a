//! `quota`, `catalog` and `bill`: the department's own view.

use yunshu_proto::api::v1 as pb;

use super::{Context, Io};
use crate::{
    cli::BillArgs,
    error::Result,
    output::{
        bill::{BillView, render_bill},
        department::{CatalogView, QuotaView, render_catalog, render_quota},
        emit,
    },
};

/// `quota`: limits and usage, overall and per foundation.
pub async fn quota(ctx: &Context, io: &mut Io<'_>) -> Result<()> {
    let department = ctx.parent()?;
    let q = ctx
        .client
        .unary(
            ctx.client
                .departments
                .clone()
                .get_quota(pb::GetQuotaRequest { department }),
        )
        .await?;
    let view = QuotaView::from(&q);
    emit(ctx.format, &view, io.out, |w| render_quota(&view, w))
}

/// `catalog`: sizes, images, zones and foundations the department may use.
pub async fn catalog(ctx: &Context, io: &mut Io<'_>) -> Result<()> {
    let department = ctx.parent()?;
    let c = ctx
        .client
        .unary(
            ctx.client
                .departments
                .clone()
                .get_catalog(pb::GetCatalogRequest { department }),
        )
        .await?;
    let view = CatalogView::from(&c);
    emit(ctx.format, &view, io.out, |w| render_catalog(&view, w))
}

/// `bill`: a month's use per foundation and class, and what it cost.
pub async fn bill(ctx: &Context, args: &BillArgs, io: &mut Io<'_>) -> Result<()> {
    let department = ctx.parent()?;
    let b = ctx
        .client
        .unary(ctx.client.departments.clone().get_bill(pb::GetBillRequest {
            department,
            month: args.month.clone().unwrap_or_default(),
        }))
        .await?;
    let view = BillView::from(&b);
    emit(ctx.format, &view, io.out, |w| render_bill(&view, w))
}
