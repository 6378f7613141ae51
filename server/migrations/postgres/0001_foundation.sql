-- Foundation: users, devices, tokens, reference data, audit log, change log.
-- Times are BIGINT Unix milliseconds; ids are UUID text; points and coefficients are
-- fixed-point integers (thousandths) so every sum is exact and reproducible.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    roles         TEXT NOT NULL,
    disabled_at   BIGINT,
    created_at    BIGINT NOT NULL
);

CREATE TABLE login_failures (
    username     TEXT PRIMARY KEY,
    failures     BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    locked_until BIGINT
);

CREATE TABLE devices (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id),
    name          TEXT NOT NULL,
    public_key    TEXT NOT NULL,
    enrolled_at   BIGINT NOT NULL,
    revoked_at    BIGINT,
    revoked_by    TEXT,
    next_seq      BIGINT NOT NULL DEFAULT 1,
    last_hash     TEXT NOT NULL,
    clock_skew_ms BIGINT,
    last_sync_at  BIGINT,
    flagged       TEXT
);
CREATE INDEX devices_user ON devices(user_id);

CREATE TABLE refresh_tokens (
    id          TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    family_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users(id),
    device_id   TEXT,
    issued_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);

CREATE TABLE zones (
    id         TEXT PRIMARY KEY,
    code       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    boundary   TEXT NOT NULL,
    version    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Time-versioned: a change closes the old row (valid_to) and opens a new one.
-- zone_id NULL means every zone (e.g. the subdistrict's zone chiefs, the assessment office).
CREATE TABLE roster (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id),
    zone_id    TEXT REFERENCES zones(id),
    role       TEXT NOT NULL,
    valid_from BIGINT NOT NULL,
    valid_to   BIGINT,
    created_by TEXT
);
CREATE INDEX roster_user ON roster(user_id, valid_to);
CREATE INDEX roster_zone ON roster(zone_id, valid_to);

-- Components and events have separate code spaces (0102 is both a sewage cover and exposed
-- garbage), so an entry is identified by its key `{kind}:{code}`, e.g. `event:0102`.
CREATE TABLE taxonomy (
    key              TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    code             TEXT NOT NULL,
    name_zh          TEXT NOT NULL,
    name_en          TEXT NOT NULL,
    work_category    TEXT NOT NULL,
    time_limit_hours BIGINT,
    version          BIGINT NOT NULL
);

CREATE TABLE assets (
    code          TEXT PRIMARY KEY,
    zone_id       TEXT NOT NULL REFERENCES zones(id),
    category_code TEXT NOT NULL REFERENCES taxonomy(key),
    name          TEXT NOT NULL,
    lat           DOUBLE PRECISION NOT NULL,
    lon           DOUBLE PRECISION NOT NULL,
    version       BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX assets_zone ON assets(zone_id);

CREATE TABLE rulebooks (
    id             TEXT PRIMARY KEY,
    version        BIGINT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    effective_from BIGINT NOT NULL,
    created_by     TEXT,
    created_at     BIGINT NOT NULL
);

CREATE TABLE rules (
    id             TEXT PRIMARY KEY,
    rulebook_id    TEXT NOT NULL REFERENCES rulebooks(id),
    code           TEXT NOT NULL,
    description    TEXT NOT NULL,
    points_milli   BIGINT NOT NULL,
    sources        TEXT NOT NULL,
    taxonomy_codes TEXT NOT NULL,
    UNIQUE (rulebook_id, code)
);

CREATE TABLE periods (
    id         TEXT PRIMARY KEY,
    code       TEXT NOT NULL UNIQUE,
    starts_at  BIGINT NOT NULL,
    ends_at    BIGINT NOT NULL,
    status     TEXT NOT NULL,
    closed_at  BIGINT,
    closed_by  TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE zone_coefficients (
    id                TEXT PRIMARY KEY,
    zone_id           TEXT NOT NULL REFERENCES zones(id),
    period_id         TEXT NOT NULL REFERENCES periods(id),
    coefficient_milli BIGINT NOT NULL,
    set_by            TEXT,
    set_at            BIGINT NOT NULL,
    UNIQUE (zone_id, period_id)
);

CREATE TABLE audit_log (
    id        TEXT PRIMARY KEY,
    actor_id  TEXT,
    action    TEXT NOT NULL,
    entity    TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    before    TEXT,
    after     TEXT,
    at        BIGINT NOT NULL
);
CREATE INDEX audit_log_entity ON audit_log(entity, entity_id);

-- The change log a pull reads. Sequence numbers are handed out from `counters` inside the
-- writing transaction, so they are in commit order (see store/changes.rs).
CREATE TABLE changes (
    seq       BIGINT PRIMARY KEY,
    entity    TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    zone_id   TEXT,
    kind      TEXT NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX changes_zone_seq ON changes(zone_id, seq);
CREATE INDEX changes_entity ON changes(entity, entity_id);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('changes', 0);
INSERT INTO counters (name, value) VALUES ('changes_pruned_through', 0);
