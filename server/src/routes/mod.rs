//! The API's table of contents: one `router()` per resource. Registering a route here also
//! documents it in the OpenAPI spec (utoipa-axum), so nothing is served that the spec lacks.

pub mod assets;
pub mod audit;
pub mod auth;
pub mod calendar;
pub mod cases;
pub mod coverage;
pub mod devices;
pub mod docs;
pub mod exports;
pub mod extract;
pub mod health;
pub mod intake;
pub mod ledger;
pub mod ledger_log;
pub mod notice_settings;
pub mod notices;
pub mod open311;
pub mod periods;
pub mod photos;
pub mod plans;
pub mod review;
pub mod roster;
pub mod rules;
pub mod sync;
pub mod taxonomy;
pub mod uploads;
pub mod users;
pub mod zones;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gridline API",
        description = "Grid-based city inspection: offline sync from inspectors' phones, photo \
                       evidence, supervisor review and the deduction ledger. Every error is \
                       `{code, message, details}` with a stable `code`."
    ),
    modifiers(&BearerAuth),
    components(schemas(gridline_sync::ErrorBody, gridline_sync::ErrorCode, crate::model::RoundView)),
    tags(
        (name = "health", description = "Liveness, readiness, metrics"),
        (name = "auth", description = "Login and tokens"),
        (name = "devices", description = "Phone enrolment"),
        (name = "users", description = "Accounts"),
        (name = "reference", description = "Zones, roster, taxonomy, assets, rules, periods"),
        (name = "audit", description = "Who changed what"),
        (name = "sync", description = "Offline sync: push and pull (see PROTOCOL.md)"),
        (name = "cases", description = "Cases, evidence and conflicts"),
        (name = "photos", description = "Photo evidence: resumable (tus) uploads, metadata, links"),
        (name = "review", description = "Supervisor review: the case workflow and the review queue"),
        (name = "intake", description = "Cases from outside the patrol: hotline calls, public reports, transfers, the press, leaders' instructions; callers and callbacks"),
        (name = "plans", description = "Inspection plans: recurrences, assignees, checklists, occurrences and missed ones; unannounced plans kept confidential until revealed, and sealed"),
        (name = "ledger", description = "Deductions, the hash-chained ledger, periods, scores and ranking"),
        (name = "notices", description = "Notices to the people concerned: the inbox, read receipts, webhooks"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The shape of each pulled entity's `data`, by its `entity`. The wire type carries `data` as
/// raw JSON (the protocol crate knows no server models), so the document says here which schema
/// each kind of entity has; typed phone models are generated from it.
pub const PULLED_DATA: &[(gridline_sync::EntityKind, &str)] = {
    use gridline_sync::EntityKind as E;
    &[
        (E::Zone, "Zone"),
        (E::Taxonomy, "TaxonomyEntry"),
        (E::Asset, "Asset"),
        (E::Rule, "Rulebook"),
        (E::Case, "CaseView"),
        (E::Conflict, "CaseConflict"),
        (E::Round, "RoundView"),
        (E::Period, "Period"),
        (E::Notice, "NoticeView"),
        (E::Plan, "PlanView"),
    ]
};

struct PulledData;

impl Modify for PulledData {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{AnyOfBuilder, Schema};
        use utoipa::openapi::{Ref, RefOr};
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let Some(RefOr::T(Schema::OneOf(change))) = components.schemas.get_mut("Change") else {
            return;
        };
        let by_kind: Vec<String> = PULLED_DATA
            .iter()
            .map(|(kind, schema)| format!("`{}`: `{schema}`", kind.as_str()))
            .collect();
        let mut data = AnyOfBuilder::new().description(Some(format!(
            "The entity, whose schema follows `entity`: {}.",
            by_kind.join(", ")
        )));
        for (_, schema) in PULLED_DATA {
            data = data.item(Ref::from_schema_name(*schema));
        }
        let data = data.build();
        for item in &mut change.items {
            if let RefOr::T(Schema::Object(variant)) = item {
                if let Some(slot) = variant.properties.get_mut("data") {
                    *slot = RefOr::T(Schema::AnyOf(data.clone()));
                }
            }
        }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .merge(auth::router())
        .merge(devices::router())
        .merge(users::router())
        .merge(zones::router())
        .merge(roster::router())
        .merge(taxonomy::router())
        .merge(calendar::router())
        .merge(assets::router())
        .merge(rules::router())
        .merge(periods::router())
        .merge(audit::router())
        .merge(sync::router())
        .merge(cases::router())
        .merge(uploads::router())
        .merge(photos::router())
        .merge(review::router())
        .merge(intake::router())
        .merge(plans::router())
        .merge(coverage::router())
        .merge(ledger::router())
        .merge(ledger_log::router())
        .merge(exports::router())
        .merge(notices::router())
        .merge(notice_settings::router())
}

/// The API's routes and their OpenAPI document, completed with what the routes cannot say
/// themselves (the schemas of pulled entities, which exist only once every route is merged).
pub fn split() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut api) = router().split_for_parts();
    api.merge(open311::Open311Doc::openapi());
    PulledData.modify(&mut api);
    (router, api)
}

/// The OpenAPI document as committed in `openapi.yaml`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    split().1
}

pub fn openapi_yaml() -> String {
    openapi().to_yaml().unwrap_or_default()
}

pub use crate::download::attachment;
