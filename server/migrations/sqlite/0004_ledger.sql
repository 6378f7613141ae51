-- Review, the case workflow, deduction proposals, the ledger and period results.
-- Points and coefficients are BIGINT thousandths (see model::Milli); times BIGINT Unix ms.

-- The workflow columns of a case, written only by the review endpoints (routes/review.rs).
ALTER TABLE cases ADD COLUMN duplicate_of TEXT;
ALTER TABLE cases ADD COLUMN filed_at BIGINT;
ALTER TABLE cases ADD COLUMN dispatched_at BIGINT;
-- Rectification deadline: dispatch time plus the taxonomy entry's time limit.
ALTER TABLE cases ADD COLUMN deadline_at BIGINT;
-- 'accountable' (the zone's road and section chiefs) or 'squad' (the emergency squad).
ALTER TABLE cases ADD COLUMN dispatch_target TEXT;
ALTER TABLE cases ADD COLUMN rework_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cases ADD COLUMN closed_at BIGINT;

-- The review queue pages by (received_at, id) within the usual filters; overdue cases are
-- found by deadline.
CREATE INDEX cases_queue ON cases(state, received_at, id);
CREATE INDEX cases_zone_queue ON cases(zone_id, state, received_at, id);
CREATE INDEX cases_received ON cases(received_at, id);
CREATE INDEX cases_deadline ON cases(deadline_at);
CREATE INDEX cases_category ON cases(category_code, received_at, id);

-- Who a case is dispatched to now; a new dispatch replaces the rows (the history is in the
-- case's events).
CREATE TABLE case_assignments (
    case_id     TEXT NOT NULL REFERENCES cases(id),
    user_id     TEXT NOT NULL REFERENCES users(id),
    role        TEXT NOT NULL,
    assigned_at BIGINT NOT NULL,
    PRIMARY KEY (case_id, user_id)
);
CREATE INDEX case_assignments_user ON case_assignments(user_id);

-- A deduction proposed from a case or entered directly (media, leader criticism, complaint).
-- status: 'proposed', then 'approved' or 'rejected', once.
CREATE TABLE deduction_proposals (
    id               TEXT PRIMARY KEY,
    case_id          TEXT REFERENCES cases(id),
    zone_id          TEXT NOT NULL REFERENCES zones(id),
    period_id        TEXT NOT NULL REFERENCES periods(id),
    source           TEXT NOT NULL,
    rulebook_id      TEXT NOT NULL REFERENCES rulebooks(id),
    rule_code        TEXT NOT NULL,
    raw_points_milli BIGINT NOT NULL,
    category_code    TEXT,
    found_at         BIGINT NOT NULL,
    note             TEXT NOT NULL,
    status           TEXT NOT NULL,
    proposed_by      TEXT NOT NULL,
    proposed_at      BIGINT NOT NULL,
    decided_by       TEXT,
    decided_at       BIGINT,
    reason           TEXT,
    ledger_entry_id  TEXT
);
CREATE INDEX deduction_proposals_status ON deduction_proposals(status, proposed_at);
CREATE INDEX deduction_proposals_case ON deduction_proposals(case_id);

-- The deduction ledger: append-only (triggers below refuse UPDATE and DELETE), hash-chained in
-- `seq` order (see ledger/chain.rs for the canonical text). A reversal carries negated points
-- and names the entry it reverses; `reverses_id` is UNIQUE, so an entry is reversed at most once.
CREATE TABLE ledger_entries (
    seq                   BIGINT PRIMARY KEY,
    id                    TEXT NOT NULL UNIQUE,
    kind                  TEXT NOT NULL,
    zone_id               TEXT NOT NULL REFERENCES zones(id),
    period_id             TEXT NOT NULL REFERENCES periods(id),
    rulebook_version      BIGINT NOT NULL,
    rule_code             TEXT NOT NULL,
    source                TEXT NOT NULL,
    category_code         TEXT,
    work_category         TEXT,
    raw_points_milli      BIGINT NOT NULL,
    coefficient_milli     BIGINT NOT NULL,
    weighted_points_milli BIGINT NOT NULL,
    roster                TEXT NOT NULL,
    approved_by           TEXT NOT NULL,
    approved_at           BIGINT NOT NULL,
    found_at              BIGINT NOT NULL,
    case_id               TEXT,
    case_version          BIGINT,
    evidence              TEXT NOT NULL,
    proposal_id           TEXT UNIQUE,
    reverses_id           TEXT UNIQUE,
    reason                TEXT,
    prev_hash             TEXT NOT NULL,
    hash                  TEXT NOT NULL
);
CREATE INDEX ledger_entries_period_zone ON ledger_entries(period_id, zone_id);

-- Appends are serialised by this counter row (as `changes` is), so the chain stays linear.
INSERT INTO counters (name, value) VALUES ('ledger', 0);

-- The scores and ranking of a period as computed when it closed, byte for byte.
CREATE TABLE period_results (
    period_id       TEXT PRIMARY KEY REFERENCES periods(id),
    formula_version TEXT NOT NULL,
    body            TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    computed_at     BIGINT NOT NULL
);

-- Posted entries are never edited or deleted; a new entry into a closed period is refused.
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN
    SELECT RAISE(ABORT, 'ledger entries are append-only');
END;
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN
    SELECT RAISE(ABORT, 'ledger entries are append-only');
END;
CREATE TRIGGER ledger_entries_open_period BEFORE INSERT ON ledger_entries
WHEN (SELECT status FROM periods WHERE id = NEW.period_id) <> 'open'
BEGIN
    SELECT RAISE(ABORT, 'the period is closed');
END;
