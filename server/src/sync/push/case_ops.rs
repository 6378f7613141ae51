//! The case operations of a batch: capture, edit (through the conflict table), comment and
//! transition (through the workflow's table), with the field history they keep.

use super::*;

impl Batch<'_> {
    pub(super) fn create(&mut self, body: &OperationBody, p: &CaseCreateV1) -> OpResult {
        if let Some(existing) = self.cases.get(&p.case_id) {
            // The same capture queued again under a new sequence number: its effect is there.
            // Anything else under this id is refused (and kept), never taken for a resend.
            return if self.is_same_capture(existing, p) {
                duplicate_of_applied(existing.id, existing.version)
            } else {
                rejected(
                    ErrorCode::IdReused,
                    "this case_id already names a case with other content",
                )
            };
        }
        let Some(zone) = self.zones.get(&p.zone_id) else {
            return rejected(ErrorCode::InvalidRequest, "unknown zone_id");
        };
        if !self.scope.contains(p.zone_id) && !self.on_own_plan_round(p) {
            return rejected(ErrorCode::OutOfScope, "that zone is outside your roster");
        }
        if !self.taxonomy.contains(&p.category_code) {
            return rejected(
                ErrorCode::InvalidRequest,
                "unknown category_code (use a taxonomy key such as event:0102)",
            );
        }
        // Stored, checked against the zone and compared with EXIF in WGS-84, whatever datum
        // the phone gave the position in.
        let (lat, lon) = p.location.to_wgs84();
        let mut flags = Vec::new();
        if !crate::geo::contains(&zone.boundary, lon, lat) {
            flags.push("location_outside_zone".to_owned());
        }
        if self.skewed {
            flags.push("clock_skew".to_owned());
        }
        let case = CaseRow {
            id: p.case_id,
            zone_id: p.zone_id,
            reporter_id: self.user.user_id,
            device_id: Some(self.device.id),
            source: "inspection".into(),
            state: CaseState::Reported,
            category_code: p.category_code.clone(),
            description: p.description.clone(),
            severity: p.severity,
            asset_code: p.asset_code.clone(),
            lat,
            lon,
            accuracy_m: p.location.accuracy_m,
            captured_at: ms_from_time(p.captured_at),
            queued_at: ms_from_time(body.queued_at),
            received_at: self.now,
            round_id: p.round_id,
            version: 1,
            locked_at: None,
            flags,
            created_at: self.now,
            updated_at: self.now,
        };
        let fields = fields_of(&case);
        for field in CaseField::ALL {
            self.record_history(case.id, 1, *field, &fields);
        }
        self.add_photos(case.id, &p.photos);
        self.events.push(EventRow {
            id: new_id(),
            case_id: case.id,
            version: 1,
            kind: "created".into(),
            actor_id: self.user.user_id,
            from_state: None,
            to_state: Some(CaseState::Reported.as_str().into()),
            comment: None,
            data: None,
            at: self.now,
        });
        self.changes.push(PendingChange::upsert(
            EntityKind::Case,
            case.id,
            Some(case.zone_id.to_string()),
        ));
        let result = OpResult {
            status: OpStatus::Applied,
            entity_id: Some(case.id),
            version: Some(1),
            ..blank()
        };
        self.new_cases.push(case.id);
        self.cases.insert(case.id, case);
        result
    }

    /// Whether `p` is found on the caller's own round for a plan, in that round's zone: the
    /// plan puts the zone in reach, as it does for the round itself.
    fn on_own_plan_round(&self, p: &CaseCreateV1) -> bool {
        p.round_id
            .and_then(|id| self.rounds.get(&id))
            .is_some_and(|r| {
                r.plan_id.is_some() && r.user_id == self.user.user_id && r.zone_id == p.zone_id
            })
    }

    /// Whether `p` is, field for field (at stored precision), the capture that created `case`:
    /// same reporter, evidence and original values, and the same photos declared with it.
    pub(super) fn is_same_capture(&self, case: &CaseRow, p: &CaseCreateV1) -> bool {
        let history = self.history.get(&case.id).map(Vec::as_slice).unwrap_or(&[]);
        let original = fields_at(history, 1, &fields_of(case));
        let incoming = CaseFields {
            category_code: p.category_code.clone(),
            description: p.description.clone(),
            severity: p.severity,
            asset_code: p.asset_code.clone(),
        };
        let photo_key = |sha: &str, size: i64, at: i64, gps: (Option<f64>, Option<f64>)| {
            (
                sha.to_owned(),
                size,
                at,
                gps.0.map(f64::to_bits),
                gps.1.map(f64::to_bits),
            )
        };
        // The photos declared with the case: `before` photos declared when it was created.
        let mut stored: Vec<_> = self
            .stored_photos
            .iter()
            .chain(&self.photos)
            .filter(|ph| {
                ph.case_id == case.id && ph.role == "before" && ph.declared_at == case.created_at
            })
            .map(|ph| {
                photo_key(
                    &ph.sha256,
                    ph.size,
                    ph.captured_at,
                    (ph.gps_lat, ph.gps_lon),
                )
            })
            .collect();
        let mut declared: Vec<_> = p
            .photos
            .iter()
            .map(|ph| {
                let gps = ph.gps.map(|g| g.to_wgs84());
                let gps = (gps.map(|g| g.0), gps.map(|g| g.1));
                photo_key(
                    &ph.sha256,
                    ph.size as i64,
                    ms_from_time(ph.captured_at),
                    gps,
                )
            })
            .collect();
        stored.sort();
        declared.sort();
        case.reporter_id == self.user.user_id
            && case.zone_id == p.zone_id
            && case.captured_at == ms_from_time(p.captured_at)
            && (case.lat, case.lon) == p.location.to_wgs84()
            && case.accuracy_m == p.location.accuracy_m
            && case.round_id == p.round_id
            && original == incoming
            && stored == declared
    }

    pub(super) fn record_history(
        &mut self,
        case_id: Uuid,
        version: i64,
        field: CaseField,
        fields: &CaseFields,
    ) {
        let row = HistoryRow {
            case_id,
            version,
            field: field.as_str().to_owned(),
            value: fields.value(field).to_string(),
            changed_by: self.user.user_id,
            level: self.level().to_owned(),
            at: self.now,
        };
        self.history.entry(case_id).or_default().push(row.clone());
        self.new_history.push(row);
    }

    pub(super) fn add_photos(&mut self, case_id: Uuid, photos: &[PhotoManifest]) {
        let mut seen: HashSet<String> = self
            .photos
            .iter()
            .filter(|p| p.case_id == case_id)
            .map(|p| p.sha256.clone())
            .collect();
        for ph in photos {
            if self.existing_photos.contains(&(case_id, ph.sha256.clone()))
                || !seen.insert(ph.sha256.clone())
            {
                continue;
            }
            self.photos.push(PhotoRow {
                case_id,
                sha256: ph.sha256.clone(),
                size: ph.size as i64,
                captured_at: ms_from_time(ph.captured_at),
                gps_lat: ph.gps.map(|g| g.to_wgs84().0),
                gps_lon: ph.gps.map(|g| g.to_wgs84().1),
                role: serde_json::to_value(ph.role)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "before".into()),
                declared_by: self.user.user_id,
                declared_at: self.now,
            });
        }
    }

    /// The case for an operation, if it exists and is in the caller's scope.
    pub(super) fn case_in_scope(&self, id: Uuid) -> Result<CaseRow, OpResult> {
        match self.cases.get(&id) {
            None => Err(rejected(ErrorCode::CaseNotFound, "no such case")),
            Some(c) if !self.scope.contains(c.zone_id) => Err(rejected(
                ErrorCode::OutOfScope,
                "that case is outside your roster",
            )),
            Some(c) => Ok(c.clone()),
        }
    }

    pub(super) fn edit(&mut self, body: &OperationBody, p: &CaseEditV1) -> OpResult {
        let mut case = match self.case_in_scope(p.case_id) {
            Ok(c) => c,
            Err(r) => return r,
        };
        if p.base_version < 1 || p.base_version > case.version {
            return rejected(
                ErrorCode::InvalidRequest,
                "base_version is not a version of this case",
            );
        }
        if let Some(code) = &p.changes.category_code {
            if !self.taxonomy.contains(code) {
                return rejected(ErrorCode::InvalidRequest, "unknown category_code");
            }
        }
        let history = self.history.get(&case.id).cloned().unwrap_or_default();
        let base = fields_at(&history, p.base_version, &fields_of(&case));
        let server = fields_of(&case);
        let me = self.user.user_id;
        let changed_by = |field: CaseField| {
            history
                .iter()
                .filter(|h| h.field == field.as_str() && h.version > p.base_version)
                .max_by_key(|h| h.version)
                .map(|h| {
                    if h.changed_by == me {
                        ChangedBy::SameUser
                    } else if h.level == "supervisor" {
                        ChangedBy::Supervisor
                    } else {
                        ChangedBy::OtherInspector
                    }
                })
                .unwrap_or(ChangedBy::Nobody)
        };
        let editor = if self.user.is_supervisor_level() {
            Editor::Supervisor
        } else {
            Editor::Inspector
        };
        let ctx = EditContext {
            editor,
            state: case.state,
            locked: case.locked_at.is_some(),
        };
        let resolution = resolve_edit(ctx, &base, &server, changed_by, &p.changes);
        let records = resolution.records();
        self.record_conflicts(&case, body.op_id, &records);
        if resolution.status == OpStatus::Rejected {
            if !records.is_empty() {
                // Nothing written, but the case now shows the refused values: pullers must
                // get it again, or their copy lacks the conflicts the server shows.
                self.changes.push(PendingChange::upsert(
                    EntityKind::Case,
                    case.id,
                    Some(case.zone_id.to_string()),
                ));
            }
            let code = resolution.code.unwrap_or(ErrorCode::Conflict);
            return OpResult {
                status: OpStatus::Rejected,
                code: Some(code),
                message: Some(format!("edit refused: {code}")),
                entity_id: Some(case.id),
                version: Some(case.version),
                conflicts: records,
                ..blank()
            };
        }
        let write = resolution.to_write(&p.changes);
        if !write.is_empty() {
            case.version += 1;
            if let Some(v) = write.category_code {
                case.category_code = v;
            }
            if let Some(v) = write.description {
                case.description = v;
            }
            if let Some(v) = write.severity {
                case.severity = v;
            }
            if let Some(v) = write.asset_code {
                case.asset_code = v;
            }
            case.updated_at = self.now;
            let fields = fields_of(&case);
            for f in resolution.fields.iter().filter(|f| f.writes()) {
                self.record_history(case.id, case.version, f.field, &fields);
            }
            self.events.push(EventRow {
                id: new_id(),
                case_id: case.id,
                version: case.version,
                kind: "edited".into(),
                actor_id: self.user.user_id,
                from_state: None,
                to_state: None,
                comment: None,
                data: Some(json!({"conflicts": records.len()}).to_string()),
                at: self.now,
            });
            self.touch(case.clone());
        } else if !records.is_empty() {
            // Nothing written, but the conflict records changed what the case shows.
            self.changes.push(PendingChange::upsert(
                EntityKind::Case,
                case.id,
                Some(case.zone_id.to_string()),
            ));
        }
        OpResult {
            status: resolution.status,
            entity_id: Some(case.id),
            version: Some(case.version),
            conflicts: records,
            ..blank()
        }
    }

    pub(super) fn record_conflicts(
        &mut self,
        case: &CaseRow,
        op_id: Uuid,
        records: &[ConflictRecord],
    ) {
        for r in records {
            let id = new_id();
            let text = |v: &serde_json::Value| v.to_string();
            self.conflicts.push(ConflictRow {
                id,
                case_id: case.id,
                zone_id: case.zone_id,
                op_id,
                user_id: self.user.user_id,
                field: r.field.as_str().to_owned(),
                base_value: text(&r.base_value),
                server_value: text(&r.server_value),
                incoming_value: text(&r.incoming_value),
                resolution: serde_json::to_value(r.resolution)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                rule_id: r.rule_id.clone(),
                created_at: self.now,
            });
            self.changes.push(PendingChange::upsert(
                EntityKind::Conflict,
                id,
                Some(case.zone_id.to_string()),
            ));
        }
    }

    /// Marks a case changed: written at the end, and sent to pullers.
    pub(super) fn touch(&mut self, case: CaseRow) {
        self.changes.push(PendingChange::upsert(
            EntityKind::Case,
            case.id,
            Some(case.zone_id.to_string()),
        ));
        if !self.new_cases.contains(&case.id) {
            self.dirty.insert(case.id);
        }
        self.cases.insert(case.id, case);
    }

    /// Keeps `case` as the operation left it and answers `applied` with its new version.
    fn applied(&mut self, case: CaseRow) -> OpResult {
        let result = OpResult {
            status: OpStatus::Applied,
            entity_id: Some(case.id),
            version: Some(case.version),
            ..blank()
        };
        self.touch(case);
        result
    }

    pub(super) fn comment(&mut self, p: &CaseCommentV1) -> OpResult {
        let mut case = match self.case_in_scope(p.case_id) {
            Ok(c) => c,
            Err(r) => return r,
        };
        let taken = self
            .existing_events
            .get(&p.comment_id)
            .or_else(|| self.events.iter().find(|e| e.id == p.comment_id));
        if let Some(event) = taken {
            // The same comment queued again: its effect is there. Anything else under this id
            // is refused (and kept).
            let same = event.kind == "comment"
                && event.case_id == p.case_id
                && event.actor_id == self.user.user_id
                && event.comment.as_deref() == Some(p.text.as_str());
            return if same {
                duplicate_of_applied(case.id, case.version)
            } else {
                rejected(
                    ErrorCode::IdReused,
                    "this comment_id already names another comment",
                )
            };
        }
        case.version += 1;
        case.updated_at = self.now;
        self.events.push(EventRow {
            id: p.comment_id,
            case_id: case.id,
            version: case.version,
            kind: "comment".into(),
            actor_id: self.user.user_id,
            from_state: None,
            to_state: None,
            comment: Some(p.text.clone()),
            data: None,
            at: self.now,
        });
        self.applied(case)
    }

    pub(super) fn transition(&mut self, p: &CaseTransitionV1) -> OpResult {
        let mut case = match self.case_in_scope(p.case_id) {
            Ok(c) => c,
            Err(r) => return r,
        };
        let actor = TransitionActor {
            is_reporter: case.reporter_id == self.user.user_id,
            is_assignee: self
                .assignees
                .get(&case.id)
                .is_some_and(|a| a.contains(&self.user.user_id)),
        };
        let has_after_photo = p.photos.iter().any(|ph| ph.role == PhotoRole::After);
        match check_transition(p.action, case.state, actor, has_after_photo) {
            Err(code) => OpResult {
                status: OpStatus::Rejected,
                code: Some(code),
                message: Some(format!(
                    "{:?} is not allowed from {}",
                    p.action,
                    case.state.as_str()
                )),
                entity_id: Some(case.id),
                version: Some(case.version),
                ..blank()
            },
            Ok(to) => {
                let from = case.state;
                case.state = to;
                case.version += 1;
                case.updated_at = self.now;
                self.add_photos(case.id, &p.photos);
                self.events.push(EventRow {
                    id: new_id(),
                    case_id: case.id,
                    version: case.version,
                    kind: "transition".into(),
                    actor_id: self.user.user_id,
                    from_state: Some(from.as_str().into()),
                    to_state: Some(to.as_str().into()),
                    comment: p.comment.clone(),
                    data: None,
                    at: self.now,
                });
                self.applied(case)
            }
        }
    }
}

impl Batch<'_> {
    /// `case.verify@1`: an inspector's on-site check of a case from a public channel, kept as
    /// an event of the case (`verification`, its id the client's `verification_id`) with its
    /// `verification` photos. The ledger deducts such a case only after a visit that found it.
    pub(super) fn verify(&mut self, p: &CaseVerifyV1) -> OpResult {
        let mut case = match self.case_in_scope(p.case_id) {
            Ok(c) => c,
            Err(r) => return r,
        };
        let taken = self
            .existing_events
            .get(&p.verification_id)
            .or_else(|| self.events.iter().find(|e| e.id == p.verification_id));
        if let Some(event) = taken {
            // The same visit queued again: its effect is there.
            let recorded = event
                .data
                .as_deref()
                .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                .unwrap_or_default();
            let same = event.kind == "verification"
                && event.case_id == p.case_id
                && event.actor_id == self.user.user_id
                && recorded["found"] == json!(p.found)
                && recorded["verified_at"]
                    == json!(crate::store::rfc3339(ms_from_time(p.verified_at)));
            return if same {
                duplicate_of_applied(case.id, case.version)
            } else {
                rejected(
                    ErrorCode::IdReused,
                    "this verification_id already names another record",
                )
            };
        }
        if !(self.user.has(Role::Inspector) || self.user.is_supervisor_level()) {
            return rejected(
                ErrorCode::Forbidden,
                "only an inspector or a supervisor verifies a report on site",
            );
        }
        let source = CaseSource::parse(&case.source);
        if !source.is_some_and(CaseSource::needs_site_verification) {
            return rejected(
                ErrorCode::InvalidRequest,
                "only a case from a hotline call, a public report or a transfer is verified on site",
            );
        }
        if case.state.is_final() || case.locked_at.is_some() {
            return OpResult {
                status: OpStatus::Rejected,
                code: Some(ErrorCode::InvalidTransition),
                message: Some(format!(
                    "a case that is {} takes no verification",
                    if case.locked_at.is_some() {
                        "deducted"
                    } else {
                        case.state.as_str()
                    }
                )),
                entity_id: Some(case.id),
                version: Some(case.version),
                ..blank()
            };
        }
        let (lat, lon) = p.location.to_wgs84();
        case.version += 1;
        case.updated_at = self.now;
        self.add_photos(case.id, &p.photos);
        self.events.push(EventRow {
            id: p.verification_id,
            case_id: case.id,
            version: case.version,
            kind: "verification".into(),
            actor_id: self.user.user_id,
            from_state: None,
            to_state: None,
            comment: p.comment.clone(),
            data: Some(
                json!({
                    "found": p.found,
                    "verified_at": crate::store::rfc3339(ms_from_time(p.verified_at)),
                    "location": { "lat": lat, "lon": lon, "accuracy_m": p.location.accuracy_m },
                    "photos": p.photos.iter().map(|ph| &ph.sha256).collect::<Vec<_>>(),
                })
                .to_string(),
            ),
            at: self.now,
        });
        self.applied(case)
    }
}

fn fields_of(c: &CaseRow) -> CaseFields {
    CaseFields {
        category_code: c.category_code.clone(),
        description: c.description.clone(),
        severity: c.severity,
        asset_code: c.asset_code.clone(),
    }
}

/// The fields as they stood at `version`, from the history (latest value at or before it).
/// Stored rows were decoded when loaded (`cases::history_many`) and this batch's rows come from
/// validated operations, so a value that does not decode cannot occur here.
fn fields_at(history: &[HistoryRow], version: i64, current: &CaseFields) -> CaseFields {
    let mut out = current.clone();
    for field in CaseField::ALL {
        let value = history
            .iter()
            .filter(|h| h.field == field.as_str() && h.version <= version)
            .max_by_key(|h| h.version)
            .and_then(|h| cases::decode_history_value(&h.field, &h.value).ok());
        match value {
            Some(HistoryValue::CategoryCode(v)) => out.category_code = v,
            Some(HistoryValue::Description(v)) => out.description = v,
            Some(HistoryValue::Severity(v)) => out.severity = v,
            Some(HistoryValue::AssetCode(v)) => out.asset_code = v,
            None => {}
        }
    }
    out
}
