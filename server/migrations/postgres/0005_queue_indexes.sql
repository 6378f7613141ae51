-- The review queue reads one branch per state (store/review.rs, `queue`), each in receipt order
-- within the filters. These indexes make the category and source filters an ordered index
-- range for each state, as cases_zone_queue already does for the zone, so a page costs the
-- same with a million cases as with a hundred.
CREATE INDEX cases_category_queue ON cases(category_code, state, received_at, id);
CREATE INDEX cases_source_queue ON cases(source, state, received_at, id);
