-- Sign-in codes and links sent by mail (`otp`): one row per request. The code and the link
-- token are stored as HMACs under the server's secret, never as sent. A row dies on first use
-- (code or link), after 5 tries of its code, and at expires_at.
CREATE TABLE email_codes (
    id          TEXT PRIMARY KEY,
    email       TEXT NOT NULL,
    code_hash   TEXT NOT NULL,
    link_hash   TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    attempts    BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX email_codes_email ON email_codes (email, created_at);
