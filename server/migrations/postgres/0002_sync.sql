-- Offline sync: cases captured on phones, their evidence manifests, edits, conflicts, and the
-- per-device operation log that makes every push exactly-once.

CREATE TABLE cases (
    id            TEXT PRIMARY KEY,
    zone_id       TEXT NOT NULL REFERENCES zones(id),
    reporter_id   TEXT NOT NULL REFERENCES users(id),
    device_id     TEXT,
    source        TEXT NOT NULL,
    state         TEXT NOT NULL,
    category_code TEXT NOT NULL,
    description   TEXT NOT NULL,
    severity      TEXT NOT NULL,
    asset_code    TEXT,
    -- Evidence: facts, never edited.
    lat           DOUBLE PRECISION NOT NULL,
    lon           DOUBLE PRECISION NOT NULL,
    accuracy_m    DOUBLE PRECISION NOT NULL,
    captured_at   BIGINT NOT NULL,
    -- The three clocks: device capture time above, device queue time, server receipt time.
    queued_at     BIGINT NOT NULL,
    received_at   BIGINT NOT NULL,
    round_id      TEXT,
    version       BIGINT NOT NULL,
    -- Set when a deduction on the case is approved: evidence and ledger fields are frozen.
    locked_at     BIGINT,
    -- JSON array of integrity flags, e.g. ["location_outside_zone", "clock_skew"].
    flags         TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX cases_zone_state ON cases(zone_id, state);
CREATE INDEX cases_reporter ON cases(reporter_id);

-- Every value a mutable field has had, with who set it: the base of conflict resolution.
CREATE TABLE case_field_history (
    case_id    TEXT NOT NULL REFERENCES cases(id),
    version    BIGINT NOT NULL,
    field      TEXT NOT NULL,
    value      TEXT NOT NULL,
    changed_by TEXT NOT NULL,
    -- 'inspector' or 'supervisor': the editor's level when the change was made.
    level      TEXT NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (case_id, version, field)
);

-- The photo manifest a phone declared (append-only). The bytes arrive on their own channel.
CREATE TABLE case_photos (
    case_id     TEXT NOT NULL REFERENCES cases(id),
    sha256      TEXT NOT NULL,
    size        BIGINT NOT NULL,
    captured_at BIGINT NOT NULL,
    gps_lat     DOUBLE PRECISION,
    gps_lon     DOUBLE PRECISION,
    role        TEXT NOT NULL,
    declared_by TEXT NOT NULL,
    declared_at BIGINT NOT NULL,
    PRIMARY KEY (case_id, sha256)
);
CREATE INDEX case_photos_sha ON case_photos(sha256);

-- Append-only history of a case: creation, edits, comments, transitions.
CREATE TABLE case_events (
    id         TEXT PRIMARY KEY,
    case_id    TEXT NOT NULL REFERENCES cases(id),
    version    BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    from_state TEXT,
    to_state   TEXT,
    comment    TEXT,
    data       TEXT,
    at         BIGINT NOT NULL
);
CREATE INDEX case_events_case ON case_events(case_id, version);

CREATE TABLE conflicts (
    id             TEXT PRIMARY KEY,
    case_id        TEXT NOT NULL REFERENCES cases(id),
    zone_id        TEXT NOT NULL,
    op_id          TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    field          TEXT NOT NULL,
    base_value     TEXT NOT NULL,
    server_value   TEXT NOT NULL,
    incoming_value TEXT NOT NULL,
    resolution     TEXT NOT NULL,
    rule_id        TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX conflicts_case ON conflicts(case_id);

CREATE TABLE rounds (
    id          TEXT PRIMARY KEY,
    zone_id     TEXT NOT NULL REFERENCES zones(id),
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT
);

-- One row per operation a device sent and the server acknowledged, with its stored result:
-- a retry returns this result and never applies the operation twice.
CREATE TABLE sync_ops (
    device_id   TEXT NOT NULL REFERENCES devices(id),
    seq         BIGINT NOT NULL,
    op_id       TEXT NOT NULL UNIQUE,
    hash        TEXT NOT NULL,
    op_type     TEXT NOT NULL,
    status      TEXT NOT NULL,
    result      TEXT NOT NULL,
    queued_at   BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    skew_ms     BIGINT,
    PRIMARY KEY (device_id, seq)
);

-- Operations that were refused, kept whole for supervisors: nothing a phone sent is dropped.
CREATE TABLE sync_rejections (
    id          TEXT PRIMARY KEY,
    device_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    op_id       TEXT,
    op_text     TEXT NOT NULL,
    sig         TEXT NOT NULL,
    code        TEXT NOT NULL,
    message     TEXT NOT NULL,
    acknowledged BIGINT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX sync_rejections_device ON sync_rejections(device_id, seq);
