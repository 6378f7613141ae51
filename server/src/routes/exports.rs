//! Exports: the ledger and the ranking as CSV or XLSX, the case list as CSV or GeoJSON.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::ledger::closing::{scoped_zones, visible_ranking};
use crate::ledger::export::{Cell, Table};
use crate::model::Milli;
use crate::routes::extract::Query;
use crate::state::AppState;
use crate::store::{cases, ledger as store, reference, review, rfc3339};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ledger))
        .routes(routes!(ranking))
        .routes(routes!(case_list))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TableFormat {
    Csv,
    Xlsx,
}

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

fn send(table: &Table, format: TableFormat, stem: &str) -> ApiResult<Response> {
    let (bytes, mime, ext) = match format {
        TableFormat::Csv => (
            table.to_csv().map_err(ApiError::internal)?,
            "text/csv; charset=utf-8",
            "csv",
        ),
        TableFormat::Xlsx => (table.to_xlsx().map_err(ApiError::internal)?, XLSX, "xlsx"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(mime)),
            (
                header::CONTENT_DISPOSITION,
                crate::routes::attachment(&format!("{stem}.{ext}")),
            ),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LedgerExportQuery {
    pub period_id: Option<Uuid>,
    pub zone_id: Option<Uuid>,
    #[param(value_type = String)]
    pub format: TableFormat,
}

/// The ledger (zones in the caller's scope) as CSV or XLSX, in chain order.
#[utoipa::path(get, path = "/v1/exports/ledger", operation_id = "export_ledger", tag = "ledger", security(("bearer" = [])), params(LedgerExportQuery),
    responses((status = 200, description = "CSV or XLSX", content((String = "text/csv"), (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")))))]
async fn ledger(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<LedgerExportQuery>,
) -> ApiResult<Response> {
    let zones = scoped_zones(&state.db, &user, q.zone_id).await?;
    let codes: std::collections::HashMap<String, String> = store::zone_refs(&state.db.pool)
        .await?
        .into_iter()
        .map(|z| (z.id, z.code))
        .collect();
    let mut rows = Vec::new();
    let mut after = 0;
    loop {
        let page =
            store::entries(&state.db.pool, q.period_id, zones.as_deref(), after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            rows.push(vec![
                Cell::Int(e.seq),
                e.id.clone().into(),
                e.kind.clone().into(),
                codes.get(&e.zone_id).cloned().unwrap_or_default().into(),
                e.period_id.clone().into(),
                e.rule_code.clone().into(),
                e.source.clone().into(),
                e.work_category.clone().into(),
                Milli::to_f64(e.raw_points_milli).into(),
                Milli::to_f64(e.coefficient_milli).into(),
                Milli::to_f64(e.weighted_points_milli).into(),
                e.approved_by.clone().into(),
                e.proposed_by.clone().into(),
                rfc3339(e.approved_at).into(),
                e.case_id.clone().into(),
                e.case_version.into(),
                e.evidence.clone().into(),
                e.reverses_id.clone().into(),
                e.reason.clone().into(),
                e.hash.clone().into(),
            ]);
        }
    }
    let table = Table {
        name: "ledger",
        headers: vec![
            "seq",
            "id",
            "kind",
            "zone",
            "period_id",
            "rule",
            "source",
            "work_category",
            "raw_points",
            "coefficient",
            "weighted_points",
            "approved_by",
            "proposed_by",
            "approved_at",
            "case_id",
            "case_version",
            "evidence",
            "reverses_id",
            "reason",
            "hash",
        ],
        rows,
    };
    send(&table, q.format, "ledger")
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RankingExportQuery {
    pub period_id: Uuid,
    #[param(value_type = String)]
    pub format: TableFormat,
}

/// The ranking of a period as CSV or XLSX: one row per zone with score and indicators, the
/// zones the caller may see as in `GET /v1/periods/{id}/ranking` (inspectors and squad
/// members: 403).
#[utoipa::path(get, path = "/v1/exports/ranking", operation_id = "export_ranking", tag = "ledger", security(("bearer" = [])), params(RankingExportQuery),
    responses((status = 200, description = "CSV or XLSX", content((String = "text/csv"), (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 403, body = gridline_sync::ErrorBody), (status = 404, body = gridline_sync::ErrorBody)))]
async fn ranking(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<RankingExportQuery>,
) -> ApiResult<Response> {
    let period = reference::period(&state.db.pool, q.period_id)
        .await?
        .ok_or_else(|| ApiError::not_found("period"))?;
    let r = visible_ranking(&state.db, &user, &period).await?;
    let rows = r
        .zones
        .iter()
        .map(|z| {
            vec![
                Cell::Int(z.rank),
                z.zone_code.clone().into(),
                z.zone_name.clone().into(),
                z.score.into(),
                z.deductions.into(),
                Cell::Int(z.entries),
                Cell::Int(z.reversals),
                Cell::Int(z.indicators.cases_found),
                Cell::Int(z.indicators.filed),
                Cell::Int(z.indicators.closed),
                Cell::Int(z.indicators.closed_on_time),
                Cell::Int(z.indicators.rework),
                Cell::Int(z.indicators.overdue),
                r.formula_version.clone().into(),
            ]
        })
        .collect();
    let table = Table {
        name: "ranking",
        headers: vec![
            "rank",
            "zone",
            "zone_name",
            "score",
            "deductions",
            "entries",
            "reversals",
            "cases_found",
            "filed",
            "closed",
            "closed_on_time",
            "rework",
            "overdue",
            "formula_version",
        ],
        rows,
    };
    send(&table, q.format, &format!("ranking-{}", period.code))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaseFormat {
    Csv,
    Geojson,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CaseExportQuery {
    pub state: Option<String>,
    #[param(value_type = String)]
    pub format: CaseFormat,
}

/// Cases in the caller's scope (at most 100,000) as CSV or as a GeoJSON FeatureCollection of
/// points.
#[utoipa::path(get, path = "/v1/exports/cases", operation_id = "export_cases", tag = "cases", security(("bearer" = [])), params(CaseExportQuery),
    responses((status = 200, description = "CSV or GeoJSON", content((String = "text/csv"), (Object = "application/geo+json")))))]
async fn case_list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<CaseExportQuery>,
) -> ApiResult<Response> {
    let scope = user.scope(&state.db).await?;
    let mut all = Vec::new();
    let mut after = None;
    while all.len() < 100_000 {
        let page = cases::list(
            &state.db.pool,
            scope.zones(),
            q.state.as_deref(),
            after,
            1000,
            user.confidential_reader(),
        )
        .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        all.extend(page);
    }
    let ids: Vec<Uuid> = all.iter().map(|c| c.id).collect();
    let mut conn = state.db.pool.acquire().await?;
    let workflows = review::workflows(&mut conn, &ids).await?;
    let now = crate::store::now_ms();
    let codes: std::collections::HashMap<String, String> = store::zone_refs(&mut *conn)
        .await?
        .into_iter()
        .map(|z| (z.id, z.code))
        .collect();
    let rows: Vec<(Vec<Cell>, &cases::CaseRow)> = all
        .iter()
        .map(|c| {
            let w = workflows.get(&c.id).cloned().unwrap_or_default();
            (
                vec![
                    c.id.to_string().into(),
                    codes
                        .get(&c.zone_id.to_string())
                        .cloned()
                        .unwrap_or_default()
                        .into(),
                    c.state.as_str().into(),
                    c.category_code.clone().into(),
                    c.source.clone().into(),
                    c.severity.as_str().into(),
                    c.description.clone().into(),
                    c.lat.into(),
                    c.lon.into(),
                    rfc3339(c.captured_at).into(),
                    rfc3339(c.received_at).into(),
                    w.deadline_at.map(rfc3339).into(),
                    Cell::Text(
                        gridline_sync::workflow::is_overdue(c.state, w.deadline_at, now)
                            .to_string(),
                    ),
                    Cell::Int(w.rework_count),
                    Cell::Int(c.version),
                    Cell::Text(c.locked_at.is_some().to_string()),
                    Cell::Text(c.flags.join(" ")),
                ],
                c,
            )
        })
        .collect();
    let headers = vec![
        "id",
        "zone",
        "state",
        "category",
        "source",
        "severity",
        "description",
        "lat",
        "lon",
        "captured_at",
        "received_at",
        "deadline",
        "overdue",
        "rework",
        "version",
        "locked",
        "flags",
    ];
    match q.format {
        CaseFormat::Csv => {
            let table = Table {
                name: "cases",
                headers,
                rows: rows.into_iter().map(|(r, _)| r).collect(),
            };
            send(&table, crate::routes::exports::TableFormat::Csv, "cases")
        }
        CaseFormat::Geojson => {
            let features: Vec<serde_json::Value> = rows
                .into_iter()
                .map(|(cells, c)| {
                    let mut props = serde_json::Map::new();
                    for (h, cell) in headers.iter().zip(cells) {
                        let v = match cell {
                            Cell::Text(s) => serde_json::Value::String(s),
                            Cell::Int(i) => i.into(),
                            Cell::Num(n) => n.into(),
                            Cell::Empty => serde_json::Value::Null,
                        };
                        props.insert((*h).to_owned(), v);
                    }
                    serde_json::json!({
                        "type": "Feature",
                        "id": c.id,
                        "geometry": {"type": "Point", "coordinates": [c.lon, c.lat]},
                        "properties": props,
                    })
                })
                .collect();
            let body = serde_json::json!({"type": "FeatureCollection", "features": features});
            Ok((
                [(header::CONTENT_TYPE, "application/geo+json")],
                body.to_string(),
            )
                .into_response())
        }
    }
}
