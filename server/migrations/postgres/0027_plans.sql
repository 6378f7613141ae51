-- Inspection plans: what is inspected (zones, work categories), by whom (assignees), when (an
-- iCalendar recurrence from a first local start, each occurrence open for a window) and with
-- which checklist. A plan is `periodic` (announced) or `unannounced` (暗访): an unannounced
-- plan, its rounds and the cases they raise are kept from the inspected zones' roster until
-- revealed (see store::cases::hidden_case_sql).
CREATE TABLE plans (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL,
    -- The RRULE value (`FREQ=WEEKLY;BYDAY=MO`), without the `RRULE:` name.
    rrule          TEXT NOT NULL,
    -- The first occurrence's local start, `YYYY-MM-DDTHH:MM`, in `time_zone`.
    dtstart        TEXT NOT NULL,
    time_zone      TEXT NOT NULL,
    window_minutes BIGINT NOT NULL,
    -- JSON arrays: zone ids, category codes (empty: every category).
    zones          TEXT NOT NULL,
    categories     TEXT NOT NULL,
    -- JSON: the checklist template (gridline_sync::plan::Checklist).
    checklist      TEXT NOT NULL,
    created_by     TEXT NOT NULL REFERENCES users(id),
    created_at     BIGINT NOT NULL,
    cancelled_at   BIGINT,
    revealed_at    BIGINT,
    revealed_by    TEXT,
    -- Unannounced plans only: the secret nonce (hex) and the commitment (hex SHA-256) over
    -- the plan's scope, window, assignees and the nonce, appended to `plan_log` at creation.
    nonce          TEXT,
    commitment     TEXT,
    version        BIGINT NOT NULL
);

CREATE TABLE plan_assignees (
    plan_id TEXT NOT NULL REFERENCES plans(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    PRIMARY KEY (plan_id, user_id)
);
CREATE INDEX plan_assignees_user ON plan_assignees(user_id);

-- The sealed plans' log: each unannounced plan's commitment is a leaf of an RFC 6962 Merkle
-- tree (leaf i = the commitment of the row with seq i + 1), and the tree head after it is
-- signed with the server key (plans::seal). The row is the receipt: whoever keeps it can show
-- later that the commitment existed at `committed_at`.
CREATE TABLE plan_log (
    seq          BIGINT PRIMARY KEY,
    plan_id      TEXT NOT NULL UNIQUE,
    commitment   TEXT NOT NULL,
    committed_at BIGINT NOT NULL,
    root_hash    TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    public_key   TEXT NOT NULL,
    signature    TEXT NOT NULL
);

-- A round made for a plan's occurrence (`round.start@2`), when it was revealed (unannounced
-- rounds: by the planner, or when its period closes), its checklist (`round.checklist@1`:
-- the responses as JSON, the weighted score in per mille, the failed items) and its track
-- (`round.track@1`: an encoded polyline and its point count).
ALTER TABLE rounds ADD COLUMN plan_id TEXT;
ALTER TABLE rounds ADD COLUMN occurrence_at BIGINT;
ALTER TABLE rounds ADD COLUMN revealed_at BIGINT;
ALTER TABLE rounds ADD COLUMN checklist TEXT;
ALTER TABLE rounds ADD COLUMN score_permille BIGINT;
ALTER TABLE rounds ADD COLUMN items_failed BIGINT;
ALTER TABLE rounds ADD COLUMN track TEXT;
ALTER TABLE rounds ADD COLUMN track_points BIGINT;
CREATE INDEX rounds_plan ON rounds(plan_id, occurrence_at);
-- Unannounced rounds of periods already closed were never revealed: a close reveals them from
-- now on, so those before this migration are revealed as of their period's close.
UPDATE rounds SET revealed_at = (SELECT MIN(p.closed_at) FROM periods p
                                 WHERE p.status = 'closed' AND p.ends_at > rounds.started_at)
WHERE kind = 'unannounced' AND started_at < (SELECT MAX(ends_at) FROM periods
                                             WHERE status = 'closed');
CREATE INDEX rounds_zone_started ON rounds(zone_id, started_at);
INSERT INTO counters (name, value) VALUES ('plan_log', 0);
