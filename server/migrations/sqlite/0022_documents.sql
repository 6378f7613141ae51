-- Documents a case came with (a leader's scanned instruction, a press clipping): PDF files
-- stored in the blob store under documents/{sha256}, listed here per case. Evidence, like the
-- photos: an approved deduction binds their hashes into its ledger entry.
CREATE TABLE case_documents (
    case_id    TEXT NOT NULL REFERENCES cases(id),
    sha256     TEXT NOT NULL,
    size       BIGINT NOT NULL,
    filename   TEXT NOT NULL,
    media_type TEXT NOT NULL,
    added_by   TEXT NOT NULL REFERENCES users(id),
    added_at   BIGINT NOT NULL,
    PRIMARY KEY (case_id, sha256)
);
