-- The ledger as a transparency log: signed checkpoints (tree heads) and no REPLACE of entries.

-- Every checkpoint issued: the RFC 6962 Merkle tree hash over the first `tree_size` entries
-- (leaf i = the 32 bytes of the hash of the entry with seq i + 1), when, and the Ed25519
-- signature of the server key `key_id` over the checkpoint's text (see ledger/log.rs).
-- Append-only, as the entries are.
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

CREATE TRIGGER ledger_checkpoints_no_update BEFORE UPDATE ON ledger_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'ledger checkpoints are append-only');
END;
CREATE TRIGGER ledger_checkpoints_no_delete BEFORE DELETE ON ledger_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'ledger checkpoints are append-only');
END;

-- `INSERT OR REPLACE` (and `REPLACE INTO`) resolves a unique conflict by deleting the old row,
-- and SQLite fires no DELETE trigger for that unless `recursive_triggers` is on in the
-- connection doing it: an entry could be rewritten without any DDL. A new row may therefore
-- collide with no existing one, checked before the insert, whatever the connection's settings.
CREATE TRIGGER ledger_entries_no_replace BEFORE INSERT ON ledger_entries
WHEN EXISTS (SELECT 1 FROM ledger_entries WHERE seq = NEW.seq OR id = NEW.id
             OR proposal_id = NEW.proposal_id OR reverses_id = NEW.reverses_id)
BEGIN
    SELECT RAISE(ABORT, 'ledger entries are append-only');
END;
CREATE TRIGGER ledger_checkpoints_no_replace BEFORE INSERT ON ledger_checkpoints
WHEN EXISTS (SELECT 1 FROM ledger_checkpoints WHERE seq = NEW.seq)
BEGIN
    SELECT RAISE(ABORT, 'ledger checkpoints are append-only');
END;
