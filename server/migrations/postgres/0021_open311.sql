-- Client applications of the Open311 GeoReport v2 façade (city portals, civic apps). Each files
-- reports with its own API key, kept as its SHA-256, under a service account of its own (a
-- disabled user, so the cases name who filed them and nobody can sign in as it).
CREATE TABLE open311_clients (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    key_sha256 TEXT NOT NULL UNIQUE,
    user_id    TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- The public reports a client lists: newest first within a window.
CREATE INDEX cases_source_received ON cases(source, received_at);
