-- Notices: what happened that someone must be told (a case dispatched to them, a deduction
-- decided, ...). Written in the same transaction as the event, so a notice exists exactly when
-- its event committed. `data` is JSON: the facts a reader or a receiver needs.
CREATE TABLE notices (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    case_id    TEXT,
    zone_id    TEXT,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX notices_created ON notices(created_at);

-- Each person's in-app inbox: one row per notice and recipient; `read_at` is the read receipt.
CREATE TABLE inbox (
    notice_id TEXT NOT NULL REFERENCES notices(id),
    user_id   TEXT NOT NULL REFERENCES users(id),
    read_at   BIGINT,
    PRIMARY KEY (user_id, notice_id)
);

-- Outgoing webhooks (Standard Webhooks): where notices of the listed kinds are POSTed, signed
-- with the subscription's secret. `kinds` is a JSON array; empty means every kind.
CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    url         TEXT NOT NULL,
    secret      TEXT NOT NULL,
    kinds       TEXT NOT NULL,
    created_by  TEXT REFERENCES users(id),
    created_at  BIGINT NOT NULL,
    disabled_at BIGINT
);

-- The delivery outbox: one row per notice and subscription, written with the notice. Workers
-- of any instance claim due rows (`claimed_by`, until `locked_until`), send, and mark
-- them sent, or put them back with a later `next_at` (backoff), or give up (`failed`).
CREATE TABLE deliveries (
    id           TEXT PRIMARY KEY,
    notice_id    TEXT NOT NULL REFERENCES notices(id),
    webhook_id   TEXT NOT NULL REFERENCES webhooks(id),
    status       TEXT NOT NULL,
    attempts     BIGINT NOT NULL,
    next_at      BIGINT NOT NULL,
    claimed_by   TEXT,
    locked_until BIGINT,
    last_error   TEXT,
    sent_at      BIGINT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries(status, next_at);
