-- An operation that reuses an op_id already stored is refused, but still acknowledged: its
-- result is stored under its own (device_id, seq) like any other, so a retry gets the same
-- answer and the phone's queue moves on. Its op_id is therefore stored twice, so op ids are
-- unique among the operations that took effect (every status but `rejected`) instead of among
-- all stored ones; push still refuses any op_id stored before, whatever its status.
ALTER TABLE sync_ops DROP CONSTRAINT sync_ops_op_id_key;
CREATE UNIQUE INDEX sync_ops_op_id_effective ON sync_ops(op_id) WHERE status <> 'rejected';
CREATE INDEX sync_ops_op_id ON sync_ops(op_id);
