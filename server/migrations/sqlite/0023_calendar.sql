-- The site's calendar: days that differ from the week's pattern (calendar.weekend), either a
-- holiday on a weekday (working = 0) or a make-up working day on a weekend day (working = 1).
-- Imported from CSV a year at a time; deadlines in working hours or days are counted on it.
CREATE TABLE calendar_days (
    day        TEXT PRIMARY KEY,
    working    BIGINT NOT NULL,
    name       TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A problem category's time limit may be in working hours or working days instead of plain
-- hours (at most one of the three is set).
ALTER TABLE taxonomy ADD COLUMN time_limit_working_hours BIGINT;
ALTER TABLE taxonomy ADD COLUMN time_limit_working_days BIGINT;

-- A dispatched case's time limit in working time, milliseconds, when its category counts
-- working time (NULL: the clock): the escalation marks are shares of it on the calendar.
ALTER TABLE cases ADD COLUMN time_limit_working_ms BIGINT;
