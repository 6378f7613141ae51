-- Names in languages other than the one a zone, a rule or a rulebook was published in: a JSON
-- object from language tag to text, e.g. {"en": "Taihe Community"}. The published text stays
-- in `name` / `description`; readers get the text in their language when there is one.
ALTER TABLE zones ADD COLUMN translations TEXT NOT NULL DEFAULT '{}';
ALTER TABLE rules ADD COLUMN translations TEXT NOT NULL DEFAULT '{}';
ALTER TABLE rulebooks ADD COLUMN translations TEXT NOT NULL DEFAULT '{}';
