-- Baton's schema. Times are unix milliseconds (BIGINT) and flags are 0/1 BIGINTs, so the same
-- SQL runs unchanged on SQLite and PostgreSQL.

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE,
    password_hash   TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    failed_logins   BIGINT NOT NULL DEFAULT 0,
    locked_until    BIGINT
);

-- One row per session, not per token: the refresh token is (id, generation, MAC), so rotation
-- is a compare-and-swap on generation and no token copy is stored.
CREATE TABLE sessions (
    id                  TEXT PRIMARY KEY,
    user_id             TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    generation          BIGINT NOT NULL,
    nonce               TEXT NOT NULL,
    device_id           TEXT,
    user_agent          TEXT,
    ip                  TEXT,
    remember_me         BIGINT NOT NULL,
    cookie_transport    BIGINT NOT NULL,
    created_at          BIGINT NOT NULL,
    last_used_at        BIGINT NOT NULL,
    rotated_at          BIGINT NOT NULL,
    rotated_by_device   TEXT,
    idle_expires_at     BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL,
    revoked_at          BIGINT,
    revoked_reason      TEXT
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_revoked_at ON sessions (revoked_at);

CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     TEXT,
    at          BIGINT NOT NULL,
    type        TEXT NOT NULL,
    severity    TEXT NOT NULL,
    session_id  TEXT,
    device_id   TEXT,
    ip          TEXT,
    detail      TEXT NOT NULL
);
CREATE INDEX audit_events_user_at ON audit_events (user_id, id);
CREATE INDEX audit_events_at ON audit_events (at);

-- Server secrets (signing key, refresh MAC key), created once and shared by every instance.
CREATE TABLE server_keys (
    name        TEXT PRIMARY KEY,
    kid         TEXT NOT NULL,
    secret      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
