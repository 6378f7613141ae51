-- Who proposed each deduction, recorded with the entry beside who approved it (the four-eyes
-- rule). Outside the hashed text, whose format stays as it is; entries are append-only, so
-- entries posted before this column leave it empty.
ALTER TABLE ledger_entries ADD COLUMN proposed_by TEXT;
