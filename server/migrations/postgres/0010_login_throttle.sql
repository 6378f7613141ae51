-- Failed logins are counted per key (`auth::throttle`): a user name from one client address,
-- an address, a user name from every address. This replaces the count per user name alone
-- (locks in force are forgotten: they last minutes).
DROP TABLE login_failures;

CREATE TABLE login_throttle (
    key          TEXT PRIMARY KEY,
    failures     BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    locked_until BIGINT
);
