-- Each mark of a dispatched case's time limit (a percentage: 50, 100, 150 by default) that has
-- been passed and told: once per case and mark, however many instances look, because the
-- notice is recorded in the transaction that inserts this row.
CREATE TABLE case_escalations (
    case_id  TEXT NOT NULL REFERENCES cases(id),
    mark_pct BIGINT NOT NULL,
    at       BIGINT NOT NULL,
    PRIMARY KEY (case_id, mark_pct)
);
