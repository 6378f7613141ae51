-- Uploads whose pieces in the blob store are still to be deleted. A row is written in the same
-- transaction that completes or forgets an upload, and deleted once the store has listed and
-- deleted every object under `uploads/{upload_id}/`; while the store refuses (an outage, or a
-- bucket policy without ListBucket), the clean-up job tries again on every run, so no piece is
-- forgotten in the bucket.
CREATE TABLE upload_cleanups (
    upload_id   TEXT PRIMARY KEY,
    created_at  BIGINT NOT NULL,
    attempts    BIGINT NOT NULL,
    last_error  TEXT
);
CREATE INDEX upload_cleanups_age ON upload_cleanups(created_at);
