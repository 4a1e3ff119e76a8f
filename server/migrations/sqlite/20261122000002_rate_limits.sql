-- Sliding-window rate limits shared by every instance: one row per counted attempt.
CREATE TABLE rate_hits (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    key  TEXT NOT NULL,
    at   BIGINT NOT NULL
);
CREATE INDEX rate_hits_key_at ON rate_hits (key, at);
CREATE INDEX rate_hits_at ON rate_hits (at);
