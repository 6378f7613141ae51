-- An operation that reuses an op_id already stored is refused, but still acknowledged: its
-- result is stored under its own (device_id, seq) like any other, so a retry gets the same
-- answer and the phone's queue moves on. Its op_id is therefore stored twice, so op ids are
-- unique among the operations that took effect (every status but `rejected`) instead of among
-- all stored ones; push still refuses any op_id stored before, whatever its status.
-- SQLite cannot drop a column's UNIQUE constraint: the table is rebuilt.
CREATE TABLE sync_ops_new (
    device_id   TEXT NOT NULL REFERENCES devices(id),
    seq         BIGINT NOT NULL,
    op_id       TEXT NOT NULL,
    hash        TEXT NOT NULL,
    op_type     TEXT NOT NULL,
    status      TEXT NOT NULL,
    result      TEXT NOT NULL,
    queued_at   BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    skew_ms     BIGINT,
    PRIMARY KEY (device_id, seq)
);
INSERT INTO sync_ops_new (device_id, seq, op_id, hash, op_type, status, result, queued_at,
                          received_at, skew_ms)
SELECT device_id, seq, op_id, hash, op_type, status, result, queued_at, received_at, skew_ms
FROM sync_ops;
DROP TABLE sync_ops;
ALTER TABLE sync_ops_new RENAME TO sync_ops;
CREATE UNIQUE INDEX sync_ops_op_id_effective ON sync_ops(op_id) WHERE status <> 'rejected';
CREATE INDEX sync_ops_op_id ON sync_ops(op_id);
