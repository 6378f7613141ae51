-- What a deduction proposal deducts for: `finding` (the problem found; every proposal made
-- before this migration) or `lateness` (the case was not rectified by its deadline: the
-- rulebook's additional deduction). A case holds at most one deduction of each basis, pending
-- or standing: the unique index on the case a proposal holds becomes one per basis. It is also
-- what keeps the automatic overdue proposal to one per case when several instances escalate at
-- once (a proposal holds its case from the moment it is made).
ALTER TABLE deduction_proposals ADD COLUMN basis TEXT NOT NULL DEFAULT 'finding';
DROP INDEX deduction_proposals_open_case;
CREATE UNIQUE INDEX deduction_proposals_open_case ON deduction_proposals(open_case_id, basis);

-- When the recipient acknowledged an escalation notice (`case.due_soon`, `case.overdue`):
-- more than reading it, they answer that they know. A lateness entry in the ledger cites it.
ALTER TABLE inbox ADD COLUMN acknowledged_at BIGINT;

-- The system account that proposes the automatic overdue deductions, so that any supervisor
-- may approve them under four eyes. Disabled, with no password hash a password can match:
-- nobody signs in as it, and as a disabled user it receives no notices.
INSERT INTO users (id, username, display_name, password_hash, roles, disabled_at, created_at)
VALUES ('00000000-0000-4000-8000-000000000001', 'gridline-system', 'Gridline (system)', '!',
        'supervisor', 0, 0);
