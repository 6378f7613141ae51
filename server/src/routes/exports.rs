//! Exports: the ledger and the ranking as CSV or XLSX, the case list as CSV or GeoJSON.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::exports::{self, Reader, Table};
use crate::i18n::Lang;
use crate::routes::extract::Query;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ledger))
        .routes(routes!(ranking))
        .routes(routes!(case_list))
        .routes(routes!(report))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TableFormat {
    Csv,
    Xlsx,
}

use crate::exports::table::XLSX;

fn send(table: &Table, format: TableFormat, stem: &str) -> ApiResult<Response> {
    let (bytes, mime, file) = table.encode(format == TableFormat::Xlsx, stem)?;
    Ok(download(bytes, mime, &file))
}

/// A file to save: its type and the name a browser saves it under.
fn download(bytes: Vec<u8>, mime: &'static str, filename: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(mime)),
            (
                header::CONTENT_DISPOSITION,
                crate::routes::attachment(filename),
            ),
        ],
        bytes,
    )
        .into_response()
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LedgerExportQuery {
    pub period_id: Option<Uuid>,
    pub zone_id: Option<Uuid>,
    #[param(value_type = String)]
    pub format: TableFormat,
}

/// The ledger (zones in the caller's scope) as CSV or XLSX, in chain order: names beside
/// ids (zone, rule, category, the accountable people, proposer and approver), the proposal's
/// note and the case's description, headers in the reader's language (`Accept-Language`) and
/// times in the site's time zone. CSV starts with a UTF-8 byte-order mark.
#[utoipa::path(get, path = "/v1/exports/ledger", operation_id = "export_ledger", tag = "ledger", security(("bearer" = [])), params(LedgerExportQuery),
    responses((status = 200, description = "CSV or XLSX", content((String = "text/csv"), (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")))))]
async fn ledger(
    State(state): State<AppState>,
    Extension(lang): Extension<Lang>,
    user: AuthUser,
    Query(q): Query<LedgerExportQuery>,
) -> ApiResult<Response> {
    let reader = reader(&state, lang);
    let table = exports::ledger(&state.db, &user, &reader, q.period_id, q.zone_id).await?;
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
    Extension(lang): Extension<Lang>,
    user: AuthUser,
    Query(q): Query<RankingExportQuery>,
) -> ApiResult<Response> {
    let reader = reader(&state, lang);
    let (table, code) =
        exports::ranking(&state.db, &state.rankings, &user, &reader, q.period_id).await?;
    send(&table, q.format, &format!("ranking-{code}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaseFormat {
    Csv,
    Xlsx,
    Geojson,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CaseExportQuery {
    pub state: Option<String>,
    #[param(value_type = String)]
    pub format: CaseFormat,
    /// GeoJSON only: `wgs84` (default, as stored), `gcj02` or `bd09`, for a map drawn on
    /// that datum's tiles.
    #[param(value_type = Option<String>)]
    pub datum: Option<gridline_sync::Datum>,
}

/// Cases in the caller's scope (at most 100,000) as CSV, XLSX or a GeoJSON FeatureCollection
/// of points (properties under stable keys, with real booleans and arrays). Names, headers
/// and times as in the ledger export.
#[utoipa::path(get, path = "/v1/exports/cases", operation_id = "export_cases", tag = "cases", security(("bearer" = [])), params(CaseExportQuery),
    responses((status = 200, description = "CSV, XLSX or GeoJSON", content((String = "text/csv"), (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"), (Object = "application/geo+json")))))]
async fn case_list(
    State(state): State<AppState>,
    Extension(lang): Extension<Lang>,
    user: AuthUser,
    Query(q): Query<CaseExportQuery>,
) -> ApiResult<Response> {
    let reader = reader(&state, lang);
    let export = exports::cases(&state.db, &user, &reader, q.state.as_deref()).await?;
    match q.format {
        CaseFormat::Csv => send(&export.table, TableFormat::Csv, "cases"),
        CaseFormat::Xlsx => send(&export.table, TableFormat::Xlsx, "cases"),
        CaseFormat::Geojson => {
            let datum = q.datum.unwrap_or_default();
            let body = export.to_geojson(&state.config.site.time_zone, datum);
            Ok((
                [(header::CONTENT_TYPE, "application/geo+json")],
                body.to_string(),
            )
                .into_response())
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    pub period_id: Uuid,
}

/// The period report (通报) as a printable XLSX sheet: the ranking, each zone's deductions
/// with the rule's text, the proposal's note, the case's description and the evidence
/// thumbnail, signed off with the ledger checkpoint it was made from. In the reader's
/// language; zones as in `GET /v1/periods/{id}/ranking` (inspectors and squad members: 403).
#[utoipa::path(get, path = "/v1/exports/report", operation_id = "export_period_report", tag = "ledger", security(("bearer" = [])), params(ReportQuery),
    responses((status = 200, description = "XLSX", content((Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 403, body = gridline_sync::ErrorBody), (status = 404, body = gridline_sync::ErrorBody)))]
async fn report(
    State(state): State<AppState>,
    Extension(lang): Extension<Lang>,
    user: AuthUser,
    Query(q): Query<ReportQuery>,
) -> ApiResult<Response> {
    let reader = reader(&state, lang);
    let (bytes, code) = exports::report::period_report(
        &state.db,
        &state.rankings,
        &state.blobs,
        &user,
        &reader,
        q.period_id,
    )
    .await?;
    Ok(download(bytes, XLSX, &format!("report-{code}.xlsx")))
}

fn reader(state: &AppState, lang: Lang) -> Reader {
    Reader {
        lang,
        tz: state.config.site.tz(),
    }
}
