-- A person's email address: their notices are mailed there when the site has an SMTP server.
ALTER TABLE users ADD COLUMN email TEXT;

-- The email outbox: one row per notice and recipient with an address, written with the notice
-- (so a mail is owed exactly when its event committed), claimed and retried as `deliveries`
-- are. `address` is the one the user had then.
CREATE TABLE email_deliveries (
    id           TEXT PRIMARY KEY,
    notice_id    TEXT NOT NULL REFERENCES notices(id),
    user_id      TEXT NOT NULL REFERENCES users(id),
    address      TEXT NOT NULL,
    status       TEXT NOT NULL,
    attempts     BIGINT NOT NULL,
    next_at      BIGINT NOT NULL,
    claimed_by   TEXT,
    locked_until BIGINT,
    last_error   TEXT,
    sent_at      BIGINT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX email_deliveries_due ON email_deliveries(status, next_at);
