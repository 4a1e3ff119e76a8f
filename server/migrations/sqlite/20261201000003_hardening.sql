-- The Idempotency-Key of the request that made the last rotation (SHA-256, hex): a retry of
-- that very request whose response was lost gets the same successor again.
ALTER TABLE sessions ADD COLUMN rotated_by_key TEXT;

-- Every access-token lifetime an instance has issued with, and when it last did: revocations
-- are kept in every instance's view for as long as any token issued may still be valid.
CREATE TABLE access_ttls (
    ttl_ms   BIGINT PRIMARY KEY,
    seen_at  BIGINT NOT NULL
);

-- Consecutive failed logins per account and source (a device that signed in before, or
-- everything else): strangers cannot lock the owner's known devices out. An attempt is counted
-- here before its password is checked, so parallel attempts cannot exceed the limit.
CREATE TABLE login_failures (
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    source        TEXT NOT NULL,
    failures      BIGINT NOT NULL,
    locks         BIGINT NOT NULL,
    locked_until  BIGINT,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (user_id, source)
);
