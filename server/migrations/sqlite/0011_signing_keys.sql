-- The public keys that have signed this database's tokens and receipts, in the order they
-- came into use. An instance whose key file lacks the newest of them could verify none of the
-- tokens the other instances issue: it refuses to start (`auth::keys`).
CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,
    public_key    TEXT NOT NULL,
    first_used_at BIGINT NOT NULL
);
