//! The batch: loading what its operations touch, taking each operation in turn (replays,
//! integrity, the chain, then the operation itself), and writing everything at the end.

use super::*;

impl<'a> Batch<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        user: &'a AuthUser,
        scope: Scope,
        device: devices::DeviceRow,
        zones: Vec<Zone>,
        taxonomy: HashSet<String>,
        now: i64,
        skew_ms: i64,
        skewed: bool,
    ) -> Self {
        Batch {
            user,
            scope,
            next_seq: device.next_seq,
            last_hash: device.last_hash.clone(),
            device,
            zones: zones.into_iter().map(|z| (z.id, z)).collect(),
            taxonomy,
            now,
            skew_ms,
            skewed,
            flagged: None,
            cases: HashMap::new(),
            history: HashMap::new(),
            assignees: HashMap::new(),
            new_cases: Vec::new(),
            dirty: HashSet::new(),
            replays: HashMap::new(),
            existing_events: HashMap::new(),
            stored_photos: Vec::new(),
            existing_photos: HashSet::new(),
            stored_sizes: HashMap::new(),
            stored_op_ids: HashSet::new(),
            batch_op_ids: HashSet::new(),
            rounds: HashMap::new(),
            rounds_new: Vec::new(),
            rounds_finished: Vec::new(),
            rounds_recorded: Vec::new(),
            plans: HashMap::new(),
            inbox: HashMap::new(),
            reads: Vec::new(),
            ops: Vec::new(),
            new_history: Vec::new(),
            photos: Vec::new(),
            events: Vec::new(),
            conflicts: Vec::new(),
            rejections: Vec::new(),
            changes: Vec::new(),
        }
    }

    /// Loads, in a few queries, every case the batch refers to and the stored results of any
    /// operations it repeats.
    pub(super) async fn prefetch(
        &mut self,
        tx: &mut WriteTx,
        verified: &[Verified],
    ) -> ApiResult<()> {
        let mut ids = Vec::new();
        let mut comment_ids = Vec::new();
        let mut round_ids = Vec::new();
        let mut notice_ids = Vec::new();
        let mut plan_ids = Vec::new();
        let mut op_ids = Vec::new();
        let mut photo_shas = Vec::new();
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for v in verified {
            if let Verified::Ok { body, .. } = v {
                let seq = body.seq as i64;
                if seq < self.next_seq {
                    lo = lo.min(seq);
                    hi = hi.max(seq);
                } else {
                    op_ids.push(body.op_id);
                    let uuid_at = |key: &str| {
                        body.payload
                            .get(key)
                            .and_then(|v| v.as_str())
                            .and_then(|s| Uuid::parse_str(s).ok())
                    };
                    ids.extend(uuid_at("case_id"));
                    comment_ids.extend(uuid_at("comment_id"));
                    // A verification is an event of its case, under the client's id.
                    comment_ids.extend(uuid_at("verification_id"));
                    photo_shas.extend(crate::photos::declared_hashes(&body.payload));
                    round_ids.extend(uuid_at("round_id"));
                    plan_ids.extend(uuid_at("plan_id"));
                    // A checklist's failed items raise cases under ids derived from the round
                    // and the item: load them, to tell a resent checklist from a new one.
                    if let (Some(round), Some(responses)) = (
                        uuid_at("round_id"),
                        body.payload.get("responses").and_then(|r| r.as_array()),
                    ) {
                        ids.extend(
                            responses
                                .iter()
                                .filter(|r| {
                                    r.get("result").and_then(|v| v.as_str()) == Some("fail")
                                })
                                .filter_map(|r| r.get("item_id")?.as_str())
                                .map(|item| gridline_sync::plan::finding_case_id(round, item)),
                        );
                    }
                    notice_ids.extend(uuid_at("notice_id"));
                }
            }
        }
        if lo <= hi {
            self.replays = sync_store::stored_results(tx.conn(), self.device.id, lo, hi).await?;
        }
        if !op_ids.is_empty() {
            self.stored_op_ids = sync_store::op_ids_used(tx.conn(), &op_ids)
                .await?
                .into_iter()
                .collect();
        }
        ids.sort();
        ids.dedup();
        if !ids.is_empty() {
            // Supervisors transition cases too (routes/review.rs): lock while reading.
            let backend = tx.backend;
            self.cases = cases::load_many_locked(tx.conn(), backend, &ids).await?;
            self.assignees = review::assignees(tx.conn(), &ids).await?;
            for h in cases::history_many(tx.conn(), &ids).await? {
                self.history.entry(h.case_id).or_default().push(h);
            }
            self.stored_photos = cases::photos_many(tx.conn(), &ids).await?;
            self.existing_photos = self
                .stored_photos
                .iter()
                .map(|p| (p.case_id, p.sha256.clone()))
                .collect();
        }
        self.stored_sizes = crate::photos::stored_sizes(tx.conn(), &photo_shas).await?;
        if !round_ids.is_empty() {
            self.rounds = sync_store::rounds_many(tx.conn(), &round_ids)
                .await?
                .into_iter()
                .map(|r| (r.id, r))
                .collect();
        }
        plan_ids.extend(self.rounds.values().filter_map(|r| r.plan_id));
        plan_ids.sort();
        plan_ids.dedup();
        for id in plan_ids {
            if let Some(row) = crate::store::plans::load(tx.conn(), id, "").await? {
                self.plans.insert(id, PlanEntry::new(row)?);
            }
        }
        if !notice_ids.is_empty() {
            notice_ids.sort();
            notice_ids.dedup();
            self.inbox =
                crate::store::notices::inbox_entries(tx.conn(), self.user.user_id, &notice_ids)
                    .await?
                    .into_iter()
                    .map(|r| {
                        let entry = InboxEntry {
                            created_at: r.notice.created_at,
                            read_at: r.read_at,
                        };
                        (r.notice.id, entry)
                    })
                    .collect();
        }
        if !comment_ids.is_empty() {
            self.existing_events = cases::events_by_id(tx.conn(), &comment_ids)
                .await?
                .into_iter()
                .map(|e| (e.id, e))
                .collect();
        }
        Ok(())
    }

    pub(super) fn step(&mut self, signed: &SignedOperation, v: &Verified) -> ApiResult<Step> {
        let (body, hash) = match v {
            Verified::Bad {
                seq,
                op_id,
                code,
                message,
            } => {
                let seq = seq.unwrap_or(self.next_seq);
                if seq < self.next_seq {
                    // A tampered copy of an operation already applied: report, change nothing.
                    return Ok(Step::Stop(rejected_result(
                        seq,
                        op_id.unwrap_or_default(),
                        *code,
                        message,
                    )));
                }
                self.integrity_failure(signed, seq, *op_id, *code, message);
                return Ok(Step::Stop(rejected_result(
                    seq,
                    op_id.unwrap_or_default(),
                    *code,
                    message,
                )));
            }
            Verified::Ok { body, hash } => (body, hash),
        };
        let seq = body.seq as i64;
        if seq < self.next_seq {
            return Ok(match self.replays.get(&seq) {
                Some((stored_hash, result)) if stored_hash == hash => {
                    Step::Result(replayed(result)?)
                }
                Some(_) => Step::Stop(rejected_result(
                    seq,
                    body.op_id,
                    ErrorCode::BrokenChain,
                    "a different operation was already acknowledged at this sequence number",
                )),
                // Acknowledged earlier in this same batch (a repeated entry): same answer.
                None => match self.ops.iter().find(|o| o.seq == seq && &o.hash == hash) {
                    Some(o) => Step::Result(replayed(&o.result)?),
                    None => Step::Stop(rejected_result(
                        seq,
                        body.op_id,
                        ErrorCode::BrokenChain,
                        "sequence reused",
                    )),
                },
            });
        }
        if seq > self.next_seq {
            // The batch starts at or before the next seq and is consecutive (`number_by_place`),
            // and every operation before this one advanced the sequence or was a replay.
            return Err(ApiError::internal(format!(
                "seq {seq} reached with {} next",
                self.next_seq
            )));
        }
        if check_chain(&self.last_hash, body).is_err() {
            let msg = "prev does not match the hash of this device's previous operation";
            self.integrity_failure(signed, seq, Some(body.op_id), ErrorCode::BrokenChain, msg);
            return Ok(Step::Stop(rejected_result(
                seq,
                body.op_id,
                ErrorCode::BrokenChain,
                msg,
            )));
        }

        let mut result = if self.stored_op_ids.contains(&body.op_id)
            || self.batch_op_ids.contains(&body.op_id)
        {
            rejected_result(
                seq,
                body.op_id,
                ErrorCode::IdReused,
                "this op_id is already taken by another operation",
            )
        } else {
            match Operation::from_body(body) {
                Err(e) => rejected_result(seq, body.op_id, e.code(), &e.to_string()),
                Ok(op) => self.apply(body, &op),
            }
        };
        result.seq = body.seq;
        result.op_id = body.op_id;
        if result.status == OpStatus::Rejected {
            self.rejections.push(RejectionRow {
                id: new_id(),
                device_id: self.device.id,
                user_id: self.user.user_id,
                seq,
                op_id: Some(body.op_id),
                op_text: signed.op.clone(),
                sig: signed.sig.clone(),
                code: result
                    .code
                    .map(|c| c.as_str())
                    .unwrap_or("rejected")
                    .to_owned(),
                message: result.message.clone().unwrap_or_default(),
                acknowledged: true,
                received_at: self.now,
            });
        }
        self.ops.push(SyncOpRow {
            device_id: self.device.id,
            seq,
            op_id: body.op_id,
            hash: hash.clone(),
            op_type: body.op_type.clone(),
            status: result.status,
            result: serde_json::to_string(&result).map_err(ApiError::internal)?,
            queued_at: ms_from_time(body.queued_at),
            received_at: self.now,
            skew_ms: Some(self.skew_ms),
        });
        self.batch_op_ids.insert(body.op_id);
        self.next_seq += 1;
        self.last_hash = hash.clone();
        Ok(Step::Result(result))
    }

    pub(super) fn integrity_failure(
        &mut self,
        signed: &SignedOperation,
        seq: i64,
        op_id: Option<Uuid>,
        code: ErrorCode,
        message: &str,
    ) {
        tracing::warn!(device = %self.device.id, seq, code = %code, "sync integrity failure");
        self.flagged = Some(code.as_str());
        self.rejections.push(RejectionRow {
            id: new_id(),
            device_id: self.device.id,
            user_id: self.user.user_id,
            seq,
            op_id,
            op_text: signed.op.chars().take(64 * 1024).collect(),
            sig: signed.sig.chars().take(1024).collect(),
            code: code.as_str().to_owned(),
            message: message.to_owned(),
            acknowledged: false,
            received_at: self.now,
        });
    }

    pub(super) fn apply(&mut self, body: &OperationBody, op: &Operation) -> OpResult {
        if let Err(message) = crate::photos::check_declared_sizes(&self.stored_sizes, &op.photos())
        {
            return rejected(ErrorCode::InvalidRequest, &message);
        }
        match op {
            Operation::CaseCreateV1(p) => self.create(body, p),
            Operation::CaseEditV1(p) => self.edit(body, p),
            Operation::CaseCommentV1(p) => self.comment(p),
            Operation::CaseTransitionV1(p) => self.transition(p),
            Operation::CaseVerifyV1(p) => self.verify(p),
            Operation::RoundStartV1(p) => self.round_start(&RoundStartV2 {
                round_id: p.round_id,
                zone_id: p.zone_id,
                kind: p.kind,
                started_at: p.started_at,
                plan_id: None,
                occurrence_at: None,
            }),
            Operation::RoundStartV2(p) => self.round_start(p),
            Operation::RoundFinishV1(p) => self.round_finish(p),
            Operation::RoundChecklistV1(p) => self.round_checklist(body, p),
            Operation::RoundTrackV1(p) => self.round_track(p),
            Operation::NoticeReadV1(p) => self.notice_read(p),
        }
    }

    pub(super) fn level(&self) -> &'static str {
        if self.user.is_supervisor_level() {
            "supervisor"
        } else {
            "inspector"
        }
    }

    /// Writes everything the batch produced, except the change-log entries: those are returned,
    /// to be numbered by the transaction's last statement.
    pub(super) async fn flush(self, tx: &mut WriteTx) -> ApiResult<Vec<PendingChange>> {
        let conn = tx.conn();
        let new_cases: Vec<CaseRow> = self
            .new_cases
            .iter()
            .filter_map(|id| self.cases.get(id).cloned())
            .collect();
        cases::insert_cases(conn, &new_cases).await?;
        let mut dirty: Vec<&CaseRow> = self
            .dirty
            .iter()
            .filter_map(|id| self.cases.get(id))
            .collect();
        // In id order, like the locks: a stable order for the row writes.
        dirty.sort_by_key(|c| c.id);
        cases::update_cases(conn, &dirty).await?;
        cases::insert_history(conn, &self.new_history).await?;
        cases::insert_photos(conn, &self.photos).await?;
        cases::insert_events(conn, &self.events).await?;
        cases::insert_conflicts(conn, &self.conflicts).await?;
        sync_store::insert_ops(conn, &self.ops).await?;
        sync_store::insert_rejections(conn, &self.rejections).await?;
        let mut changes = self.changes;
        // The first reading counts: one recorded meanwhile (the console) stands.
        for (notice, at) in &self.reads {
            let receipt =
                crate::store::notices::read_receipt(conn, self.user.user_id, *notice, *at).await?;
            if receipt == crate::store::notices::ReadReceipt::Recorded {
                changes.push(PendingChange::inbox(*notice, self.user.user_id));
            }
        }
        // A round started in this batch is inserted as it stands (finished too, if it was).
        for round in self.rounds_new.iter().filter_map(|id| self.rounds.get(id)) {
            sync_store::insert_round(conn, round, self.device.id).await?;
        }
        for round in self
            .rounds_finished
            .iter()
            .filter_map(|id| self.rounds.get(id))
        {
            if let (false, Some(at)) = (self.rounds_new.contains(&round.id), round.finished_at) {
                sync_store::finish_round(conn, round.id, at).await?;
            }
        }
        for round in self
            .rounds_recorded
            .iter()
            .filter(|id| !self.rounds_new.contains(id))
            .filter_map(|id| self.rounds.get(id))
        {
            sync_store::record_round_results(conn, round).await?;
        }
        Ok(changes)
    }
}
