-- Deduction proposals: idempotent creation and one deduction per case.

-- SHA-256 of the request that made the proposal (without its id): a client that resends a
-- proposal under the same client-made id gets the first one back; different content under
-- that id is refused.
ALTER TABLE deduction_proposals ADD COLUMN request_sha256 TEXT;

-- The case while the proposal holds it: set when a proposal on a case is made, cleared when
-- it is rejected or its ledger entry reversed. UNIQUE (NULLs apart), so a case has at most one
-- pending proposal or standing deduction, whatever the concurrency. Kept on the proposal, not
-- on the append-only ledger, because a reversal must free the case without editing an entry.
ALTER TABLE deduction_proposals ADD COLUMN open_case_id TEXT;

-- Proposals made before this migration: the earliest open one of each case holds it.
UPDATE deduction_proposals SET open_case_id = case_id
WHERE id IN (
    SELECT MIN(p.id) FROM deduction_proposals p
    WHERE p.case_id IS NOT NULL
      AND (p.status = 'proposed'
           OR (p.status = 'approved'
               AND NOT EXISTS (SELECT 1 FROM ledger_entries r
                               WHERE r.reverses_id = p.ledger_entry_id)))
    GROUP BY p.case_id
);
CREATE UNIQUE INDEX deduction_proposals_open_case ON deduction_proposals(open_case_id);

-- An approval looks for a standing deduction of the case in the ledger itself.
CREATE INDEX ledger_entries_case ON ledger_entries(case_id);
