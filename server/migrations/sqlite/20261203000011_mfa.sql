-- Two-factor sign-in.
-- A user's second factors: a TOTP secret (sealed like the server keys), confirmed once a code
-- of it was entered; `last_step` is the last time step accepted, so a code works once.
CREATE TABLE mfa_factors (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,
    secret          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    confirmed_at    BIGINT,
    last_step       BIGINT
);
CREATE INDEX mfa_factors_user ON mfa_factors (user_id);
-- Recovery codes, as HMACs under the server's secret, single use.
CREATE TABLE recovery_codes (
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    used_at     BIGINT,
    PRIMARY KEY (user_id, code_hash)
);
-- Sign-ins waiting for their second factor: the `mfa_token` (an HMAC), who asked, the DPoP key
-- of the sign-in, the session's choices, and how the first factor was proven.
CREATE TABLE mfa_challenges (
    token_hash      TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    requester       TEXT NOT NULL,
    dpop_jkt        TEXT,
    remember_me     BIGINT NOT NULL,
    cookie          BIGINT NOT NULL,
    amr             TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT
);
CREATE INDEX mfa_challenges_expires ON mfa_challenges (expires_at);
-- How each session was signed in (`amr`, a JSON list), its assurance level, and the end of a
-- step-up to level 2.
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT '[]';
ALTER TABLE sessions ADD COLUMN aal BIGINT NOT NULL DEFAULT 1;
ALTER TABLE sessions ADD COLUMN step_up_until BIGINT;
