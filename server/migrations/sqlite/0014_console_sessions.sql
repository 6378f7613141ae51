-- Browser sessions of the console. The cookie holds a random token; only its SHA-256 is kept.
-- `csrf` is the token every state-changing form and request of the session must carry.
CREATE TABLE console_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id),
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    seen_at    BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at   BIGINT
);
CREATE INDEX console_sessions_user ON console_sessions(user_id);
