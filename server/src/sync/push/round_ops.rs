//! The inspection-round operations of a batch: start (for a plan's occurrence, or not),
//! finish, the plan's checklist (which raises a case per failed item with a category) and
//! the track.

use gridline_sync::ops::{CaseCreateV1, Severity};
use gridline_sync::plan::{self, ItemResult};
use gridline_sync::validation::ValidationErrors;

use super::*;

/// A refusal naming the field, as validation errors do (`payload.zone_id: ...`).
fn invalid(errors: &ValidationErrors) -> OpResult {
    rejected(ErrorCode::InvalidRequest, &errors.to_string())
}

impl Batch<'_> {
    /// `round.start@1` (as `round.start@2` without a plan) and `round.start@2`.
    pub(super) fn round_start(&mut self, p: &RoundStartV2) -> OpResult {
        let kind = serde_json::to_value(p.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let started_at = ms_from_time(p.started_at);
        let occurrence_at = p.occurrence_at.map(ms_from_time);
        if let Some(round) = self.rounds.get(&p.round_id) {
            // The same round queued again: its effect is there. Anything else under this id is
            // refused (and kept).
            let same = round.user_id == self.user.user_id
                && round.zone_id == p.zone_id
                && round.kind == kind
                && round.started_at == started_at
                && round.plan_id == p.plan_id
                && round.occurrence_at == occurrence_at;
            return if same {
                duplicate_of_applied(round.id, round_version(round))
            } else {
                rejected(
                    ErrorCode::IdReused,
                    "this round_id already names another round",
                )
            };
        }
        match (p.plan_id, occurrence_at) {
            (Some(plan_id), Some(at)) => {
                if let Err(refusal) = self.check_plan_round(p, plan_id, at) {
                    return refusal;
                }
            }
            _ => {
                if !self.scope.contains(p.zone_id) || !self.zones.contains_key(&p.zone_id) {
                    return rejected(ErrorCode::OutOfScope, "that zone is outside your roster");
                }
            }
        }
        self.rounds.insert(
            p.round_id,
            RoundRow {
                id: p.round_id,
                zone_id: p.zone_id,
                user_id: self.user.user_id,
                kind,
                started_at,
                finished_at: None,
                plan_id: p.plan_id,
                occurrence_at,
                checklist: None,
                score_permille: None,
                items_failed: None,
                track: None,
                track_points: None,
            },
        );
        self.rounds_new.push(p.round_id);
        self.changes.push(PendingChange::upsert(
            EntityKind::Round,
            p.round_id,
            Some(p.zone_id.to_string()),
        ));
        OpResult {
            status: OpStatus::Applied,
            entity_id: Some(p.round_id),
            version: Some(1),
            ..blank()
        }
    }

    pub(super) fn round_finish(&mut self, p: &RoundFinishV1) -> OpResult {
        let at = ms_from_time(p.finished_at);
        let Some(round) = self.rounds.get_mut(&p.round_id) else {
            return rejected(ErrorCode::NotFound, "no such round");
        };
        if round.user_id != self.user.user_id {
            return rejected(ErrorCode::Forbidden, "that round is another user's");
        }
        match round.finished_at {
            // The same finish queued again.
            Some(done) if done == at => duplicate_of_applied(round.id, round_version(round)),
            Some(_) => rejected(
                ErrorCode::Conflict,
                "this round was already finished at another time",
            ),
            None => {
                round.finished_at = Some(at);
                let zone = round.zone_id;
                if !self.rounds_finished.contains(&p.round_id) {
                    self.rounds_finished.push(p.round_id);
                }
                let version = round_version(round);
                self.changes.push(PendingChange::upsert(
                    EntityKind::Round,
                    p.round_id,
                    Some(zone.to_string()),
                ));
                OpResult {
                    status: OpStatus::Applied,
                    entity_id: Some(p.round_id),
                    version: Some(version),
                    ..blank()
                }
            }
        }
    }
}

impl Batch<'_> {
    /// A round for an occurrence of plan `plan_id`: the plan is there and not cancelled, the
    /// caller is one of its assignees, the zone one of its zones, the kind its kind and
    /// `occurrence_at` one of its starts. The plan, not the caller's roster, puts the zone in
    /// reach: an unannounced inspection is often of a zone the inspector does not patrol.
    fn check_plan_round(
        &self,
        p: &RoundStartV2,
        plan_id: Uuid,
        occurrence_at: i64,
    ) -> Result<(), OpResult> {
        let Some(plan) = self.plans.get(&plan_id) else {
            return Err(rejected(ErrorCode::NotFound, "no such plan"));
        };
        if !plan.row.assignees.contains(&self.user.user_id) {
            return Err(rejected(
                ErrorCode::Forbidden,
                "you are not assigned to this plan",
            ));
        }
        if plan.row.cancelled_at.is_some() {
            return Err(rejected(ErrorCode::Conflict, "this plan is cancelled"));
        }
        if !plan.row.zones.contains(&p.zone_id) || !self.zones.contains_key(&p.zone_id) {
            return Err(rejected(
                ErrorCode::OutOfScope,
                "payload.zone_id: not one of the plan's zones",
            ));
        }
        let mut e = ValidationErrors::new();
        let kind = serde_json::to_value(p.kind).unwrap_or_default();
        if kind.as_str() != Some(plan.row.kind.as_str()) {
            e.push("payload.kind", format!("the plan is {}", plan.row.kind));
        }
        if !plan.recurrence.starts_at(occurrence_at) {
            e.push(
                "payload.occurrence_at",
                "not the start of an occurrence of the plan",
            );
        }
        e.into_result().map_err(|e| invalid(&e))
    }

    /// The round for a checklist or a track: it exists and is the caller's.
    fn own_round(&self, id: Uuid) -> Result<RoundRow, OpResult> {
        match self.rounds.get(&id) {
            None => Err(rejected(ErrorCode::NotFound, "no such round")),
            Some(r) if r.user_id != self.user.user_id => Err(rejected(
                ErrorCode::Forbidden,
                "that round is another user's",
            )),
            Some(r) => Ok(r.clone()),
        }
    }

    fn round_recorded(&mut self, round: RoundRow) -> OpResult {
        let result = OpResult {
            status: OpStatus::Applied,
            entity_id: Some(round.id),
            version: Some(round_version(&round)),
            ..blank()
        };
        self.changes.push(PendingChange::upsert(
            EntityKind::Round,
            round.id,
            Some(round.zone_id.to_string()),
        ));
        if !self.rounds_recorded.contains(&round.id) {
            self.rounds_recorded.push(round.id);
        }
        self.rounds.insert(round.id, round);
        result
    }

    /// `round.checklist@1`: stores the responses and their score, and raises, through
    /// `case.create@1`'s own path, one case per failed item with a category.
    pub(super) fn round_checklist(
        &mut self,
        body: &OperationBody,
        p: &RoundChecklistV1,
    ) -> OpResult {
        let mut round = match self.own_round(p.round_id) {
            Ok(r) => r,
            Err(refusal) => return refusal,
        };
        let recorded = json!({
            "completed_at": crate::store::rfc3339(ms_from_time(p.completed_at)),
            "responses": p.responses,
        });
        if let Some(stored) = &round.checklist {
            // The same checklist queued again: its effect (and its cases) are there.
            let stored: serde_json::Value = serde_json::from_str(stored).unwrap_or_default();
            return if stored == recorded {
                duplicate_of_applied(round.id, round_version(&round))
            } else {
                rejected(
                    ErrorCode::Conflict,
                    "this round already has another checklist",
                )
            };
        }
        let Some(plan) = round.plan_id.and_then(|id| self.plans.get(&id)) else {
            return invalid(&field_error(
                "payload.round_id",
                "the round was not started for a plan (round.start@2)",
            ));
        };
        let template = plan.checklist.clone();
        let mut e = ValidationErrors::new();
        plan::check_against_template(&template, &p.responses, "payload.responses", &mut e);
        for (i, r) in p.responses.iter().enumerate() {
            let category = template
                .item(&r.item_id)
                .and_then(|i| i.category_code.as_ref());
            if let (ItemResult::Fail, Some(code)) = (r.result, category) {
                if !self.taxonomy.contains(code) {
                    e.push(
                        format!("payload.responses[{i}].item_id"),
                        format!("the item's category {code} is not in the taxonomy"),
                    );
                }
            }
        }
        if !e.is_empty() {
            return invalid(&e);
        }
        if !self.zones.contains_key(&round.zone_id) {
            return rejected(ErrorCode::OutOfScope, "the round's zone no longer exists");
        }
        // The findings, as the phone would have captured them one by one.
        let findings: Vec<CaseCreateV1> = p
            .responses
            .iter()
            .filter(|r| r.result == ItemResult::Fail)
            .filter_map(|r| {
                let item = template.item(&r.item_id)?;
                let category_code = item.category_code.clone()?;
                let description = match r.note.as_deref().map(str::trim) {
                    Some(note) if !note.is_empty() => format!("{}\n{note}", item.label),
                    _ => item.label.clone(),
                };
                Some(CaseCreateV1 {
                    case_id: plan::finding_case_id(round.id, &r.item_id),
                    zone_id: round.zone_id,
                    category_code,
                    location: r.location?,
                    asset_code: None,
                    description,
                    severity: Severity::Medium,
                    captured_at: p.completed_at,
                    photos: r.photos.clone(),
                    round_id: Some(round.id),
                })
            })
            .collect();
        // Refused before anything is written, so that a checklist applies whole or not at all.
        if let Some(taken) = findings
            .iter()
            .find(|c| self.cases.contains_key(&c.case_id))
        {
            return rejected(
                ErrorCode::IdReused,
                &format!("the finding's case {} already exists", taken.case_id),
            );
        }
        for finding in &findings {
            let result = self.create(body, finding);
            if result.status == OpStatus::Rejected {
                // The checks above (zone, category, case id, reach through the plan) leave
                // `create` nothing to refuse; should that change, the refusal is logged loudly.
                tracing::error!(round = %round.id, case = %finding.case_id, ?result, "finding refused");
            }
        }
        let score = plan::score(
            &template,
            p.responses.iter().map(|r| (r.item_id.as_str(), r.result)),
        );
        round.checklist = Some(recorded.to_string());
        round.score_permille = Some(i64::from(score.score_permille));
        round.items_failed = Some(i64::from(score.items_failed));
        self.round_recorded(round)
    }

    /// `round.track@1`: stores the round's track, once.
    pub(super) fn round_track(&mut self, p: &RoundTrackV1) -> OpResult {
        let mut round = match self.own_round(p.round_id) {
            Ok(r) => r,
            Err(refusal) => return refusal,
        };
        if let Some(track) = &round.track {
            return if track == &p.polyline && round.track_points == Some(i64::from(p.points)) {
                duplicate_of_applied(round.id, round_version(&round))
            } else {
                rejected(ErrorCode::Conflict, "this round already has another track")
            };
        }
        round.track = Some(p.polyline.clone());
        round.track_points = Some(i64::from(p.points));
        self.round_recorded(round)
    }
}

fn field_error(path: &str, message: &str) -> ValidationErrors {
    let mut e = ValidationErrors::new();
    e.push(path, message);
    e
}
