-- When the user proved they receive mail at their address (a verification link, a password
-- reset, or a sign-in by mailed code or link); NULL: not yet.
ALTER TABLE users ADD COLUMN email_verified_at BIGINT;

-- Single-use tokens mailed for account actions (`recovery`): password reset and email
-- verification, stored as HMACs under the server's secret.
CREATE TABLE account_tokens (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose);
