//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ok` when every dependency answers.
    pub status: String,
    pub database: String,
    pub blob_store: String,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
    })
}

/// The database and the blob store both answer.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, body = Readiness), (status = 503, body = Readiness)))]
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (db, blobs) = tokio::join!(
        tokio::time::timeout(std::time::Duration::from_secs(3), state.db.ping()),
        tokio::time::timeout(
            std::time::Duration::from_secs(3),
            crate::blob::ping(state.blobs.as_ref())
        ),
    );
    let database = match db {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database");
            "unavailable".to_owned()
        }
        Err(_) => "timeout".to_owned(),
    };
    let blob_store = match blobs {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: blob store");
            "unavailable".to_owned()
        }
        Err(_) => "timeout".to_owned(),
    };
    let ok = database == "ok" && blob_store == "ok";
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status: if ok { "ok" } else { "unavailable" }.into(),
        database,
        blob_store,
    };
    (status, axum::Json(body))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "health", responses(
    (status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // The outbox is shared by every instance: read at scrape time, so each instance reports
    // the same, current figures.
    use crate::store::notices::{delivery_counts, Outbox};
    let now = crate::store::now_ms();
    if let Ok((pending, sent, failed, oldest_ms)) =
        delivery_counts(&state.db.pool, Outbox::Webhooks, now).await
    {
        for (status, n) in [("pending", pending), ("sent", sent), ("failed", failed)] {
            ::metrics::gauge!("gridline_webhook_deliveries", "status" => status).set(n as f64);
        }
        ::metrics::gauge!("gridline_webhook_oldest_pending_seconds").set(oldest_ms as f64 / 1000.0);
    }
    if let Ok((pending, sent, failed, oldest_ms)) =
        delivery_counts(&state.db.pool, Outbox::Emails, now).await
    {
        for (status, n) in [("pending", pending), ("sent", sent), ("failed", failed)] {
            ::metrics::gauge!("gridline_email_deliveries", "status" => status).set(n as f64);
        }
        ::metrics::gauge!("gridline_email_oldest_pending_seconds").set(oldest_ms as f64 / 1000.0);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
