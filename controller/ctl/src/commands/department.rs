//! `quota` and `catalog`: the department's own view.

use yunshu_proto::api::v1 as pb;

use super::{Context, Io};
use crate::{
    error::Result,
    output::{
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
