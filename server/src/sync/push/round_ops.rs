//! The inspection-round operations of a batch: start and finish.

use super::*;

impl Batch<'_> {
    pub(super) fn round_start(&mut self, p: &RoundStartV1) -> OpResult {
        let kind = serde_json::to_value(p.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let started_at = ms_from_time(p.started_at);
        if let Some(round) = self.rounds.get(&p.round_id) {
            // The same round queued again: its effect is there. Anything else under this id is
            // refused (and kept).
            let same = round.user_id == self.user.user_id
                && round.zone_id == p.zone_id
                && round.kind == kind
                && round.started_at == started_at;
            return if same {
                duplicate_of_applied(round.id, round_version(round))
            } else {
                rejected(
                    ErrorCode::IdReused,
                    "this round_id already names another round",
                )
            };
        }
        if !self.scope.contains(p.zone_id) || !self.zones.contains_key(&p.zone_id) {
            return rejected(ErrorCode::OutOfScope, "that zone is outside your roster");
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
            },
        );
        self.rounds_new.push(p.round_id);
        self.changes.push(PendingChange::upsert(
            "round",
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
                self.changes.push(PendingChange::upsert(
                    "round",
                    p.round_id,
                    Some(zone.to_string()),
                ));
                OpResult {
                    status: OpStatus::Applied,
                    entity_id: Some(p.round_id),
                    version: Some(2),
                    ..blank()
                }
            }
        }
    }
}
