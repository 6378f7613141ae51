-- Who is mailed what, and when. The in-app inbox is not governed by any of this: every notice
-- reaches every recipient's inbox; these settings decide only email.

-- An admin's default for a role: for notice `kind`, `mode` is `immediately`, `digest` (in the
-- daily digest) or `off`. A role with no row for a kind mails it immediately.
CREATE TABLE notice_role_settings (
    role       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    mode       TEXT NOT NULL,
    updated_by TEXT REFERENCES users(id),
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (role, kind)
);

-- A person's own choice for a kind; without one they follow the most generous default of
-- their roles.
CREATE TABLE notice_user_settings (
    user_id    TEXT NOT NULL REFERENCES users(id),
    kind       TEXT NOT NULL,
    mode       TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, kind)
);

-- A person's quiet hours, as minutes after local midnight in the site's time zone (the start
-- may be later than the end: the hours then cross midnight). A mail due in them waits until
-- they end.
CREATE TABLE notice_quiet_hours (
    user_id      TEXT PRIMARY KEY REFERENCES users(id),
    start_minute BIGINT NOT NULL,
    end_minute   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

-- The daily digests: one row per person and local day (`local_day`, YYYY-MM-DD in the site's
-- time zone; the unique key makes a second instance's digest of the same day a no-op),
-- claimed, sent and retried as `email_deliveries` are.
CREATE TABLE notice_digests (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id),
    local_day    TEXT NOT NULL,
    address      TEXT NOT NULL,
    status       TEXT NOT NULL,
    attempts     BIGINT NOT NULL,
    next_at      BIGINT NOT NULL,
    claimed_by   TEXT,
    locked_until BIGINT,
    last_error   TEXT,
    sent_at      BIGINT,
    created_at   BIGINT NOT NULL,
    UNIQUE (user_id, local_day)
);
CREATE INDEX notice_digests_due ON notice_digests(status, next_at);

-- Notices a person takes in their digest, written with the notice; `digest_id` is the digest
-- that carried it (NULL: waiting for the next one).
CREATE TABLE notice_digest_items (
    user_id    TEXT NOT NULL REFERENCES users(id),
    notice_id  TEXT NOT NULL REFERENCES notices(id),
    created_at BIGINT NOT NULL,
    digest_id  TEXT REFERENCES notice_digests(id),
    PRIMARY KEY (user_id, notice_id)
);
CREATE INDEX notice_digest_items_waiting ON notice_digest_items(digest_id, user_id);
