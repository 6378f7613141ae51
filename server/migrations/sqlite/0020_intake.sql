-- A case that came in outside the patrol (a hotline call, a public report, a department's
-- transfer, the press, a leader's instruction): the channel's own ticket, the place as told,
-- and who took it. `cases.source` names the channel; it is repeated here so that a ticket
-- number is unique within its channel.
CREATE TABLE case_intake (
    case_id      TEXT PRIMARY KEY REFERENCES cases(id),
    channel      TEXT NOT NULL,
    external_ref TEXT,
    address      TEXT NOT NULL,
    received_by  TEXT NOT NULL REFERENCES users(id),
    received_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX case_intake_ticket ON case_intake(channel, external_ref);

-- The people who reported a case, kept apart from the case so that nothing that carries a
-- case (the pull, exports, Open311, logs) can carry them. Name and phone are erased
-- (`erased_at` set, both NULL) once `retain_until` passes. A merge copies a duplicate's
-- callers to the case it duplicates (`merged_from`), so every reporter is called back.
CREATE TABLE case_callers (
    id           TEXT PRIMARY KEY,
    case_id      TEXT NOT NULL REFERENCES cases(id),
    name         TEXT,
    phone        TEXT,
    merged_from  TEXT REFERENCES cases(id),
    recorded_by  TEXT NOT NULL REFERENCES users(id),
    recorded_at  BIGINT NOT NULL,
    retain_until BIGINT NOT NULL,
    erased_at    BIGINT
);
CREATE INDEX case_callers_case ON case_callers(case_id);
CREATE INDEX case_callers_retention ON case_callers(retain_until);

-- Calling a caller back after the case is closed (回访): satisfied, basically satisfied,
-- dissatisfied, or not reached. Indicators per zone count these.
CREATE TABLE case_callbacks (
    id        TEXT PRIMARY KEY,
    case_id   TEXT NOT NULL REFERENCES cases(id),
    caller_id TEXT REFERENCES case_callers(id),
    outcome   TEXT NOT NULL,
    note      TEXT,
    called_by TEXT NOT NULL REFERENCES users(id),
    called_at BIGINT NOT NULL
);
CREATE INDEX case_callbacks_case ON case_callbacks(case_id);
