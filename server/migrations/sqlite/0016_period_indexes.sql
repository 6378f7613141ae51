-- A period's ranking counts the cases found in the period and the transitions made in it; the
-- overview counts the open cases. Read by time (and by state, `cases_queue`) instead of over
-- every case and event ever recorded, which at a year of a busy site is a million of each.
CREATE INDEX cases_captured ON cases(captured_at);
CREATE INDEX case_events_at ON case_events(at);
