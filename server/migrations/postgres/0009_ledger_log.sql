-- The ledger as a transparency log: signed checkpoints (tree heads).

-- Every checkpoint issued: the RFC 6962 Merkle tree hash over the first `tree_size` entries
-- (leaf i = the 32 bytes of the hash of the entry with seq i + 1), when, and the Ed25519
-- signature of the server key `key_id` over the checkpoint's text (see ledger/log.rs).
-- Append-only, as the entries are. (PostgreSQL has no REPLACE: `INSERT … ON CONFLICT DO
-- UPDATE` is an UPDATE, which the triggers refuse.)
CREATE TABLE ledger_checkpoints (
    seq        BIGINT PRIMARY KEY,
    tree_size  BIGINT NOT NULL,
    root_hash  TEXT NOT NULL,
    issued_at  BIGINT NOT NULL,
    key_id     TEXT NOT NULL,
    public_key TEXT NOT NULL,
    signature  TEXT NOT NULL,
    -- The roots of the perfect subtrees making up the tree, hex, comma-separated: the next
    -- checkpoint hashes only the entries appended since (ledger::log::Frontier).
    frontier   TEXT NOT NULL
);

CREATE FUNCTION ledger_checkpoints_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger checkpoints are append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER ledger_checkpoints_no_update BEFORE UPDATE OR DELETE ON ledger_checkpoints
    FOR EACH ROW EXECUTE FUNCTION ledger_checkpoints_append_only();
CREATE TRIGGER ledger_checkpoints_no_truncate BEFORE TRUNCATE ON ledger_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_checkpoints_append_only();
