-- Each person's inbox reaches their phones through the change log. A notice in someone's inbox
-- is a change row of entity `notice` (the notice's id) with `user_id` set: only that user's
-- pull reads it. Such rows belong to no zone (`zone_id` NULL) and are not reference data, so
-- the zone and global ranges of a pull read only rows without a `user_id`, and each user's
-- inbox is its own ordered range.
ALTER TABLE changes ADD COLUMN user_id TEXT;
DROP INDEX changes_zone_seq;
CREATE INDEX changes_zone_seq ON changes(zone_id, seq) WHERE user_id IS NULL;
CREATE INDEX changes_user_seq ON changes(user_id, seq) WHERE user_id IS NOT NULL;

-- The notices already in inboxes reach the phones too: one row each, numbered after the log's
-- head in the order the notices were made.
INSERT INTO changes (seq, entity, entity_id, zone_id, kind, at, user_id)
SELECT (SELECT value FROM counters WHERE name = 'changes')
           + ROW_NUMBER() OVER (ORDER BY n.created_at, i.notice_id, i.user_id),
       'notice', i.notice_id, NULL, 'upsert', n.created_at, i.user_id
FROM inbox i JOIN notices n ON n.id = i.notice_id;
UPDATE counters SET value = value + (SELECT COUNT(*) FROM inbox) WHERE name = 'changes';
