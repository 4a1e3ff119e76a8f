-- Accounts and administration.
-- Roles (a JSON array of short strings, in access tokens), metadata (JSON objects of at most
-- 4 KB: `app_metadata` set by admins, `user_metadata` by the user), a disabled account
-- (`disabled_until`: unix ms, far in the future for "forever"), the last sign-in, and the
-- erasure of a deleted account (the row stays, emptied, so its sessions stay revoked).
ALTER TABLE users ADD COLUMN roles TEXT NOT NULL DEFAULT '[]';
ALTER TABLE users ADD COLUMN app_metadata TEXT NOT NULL DEFAULT '{}';
ALTER TABLE users ADD COLUMN user_metadata TEXT NOT NULL DEFAULT '{}';
ALTER TABLE users ADD COLUMN disabled_until BIGINT;
ALTER TABLE users ADD COLUMN last_sign_in_at BIGINT;
ALTER TABLE users ADD COLUMN deleted_at BIGINT;
-- When anything an access token carries changed (address, its verification, roles): every
-- instance asks each second and forgets the users it cached (`session_cache::ChangeWatch`).
ALTER TABLE users ADD COLUMN changed_at BIGINT;
UPDATE users SET changed_at = email_verified_at;
CREATE INDEX users_changed_at ON users (changed_at);
DROP INDEX users_email_verified_at;
-- The address an email-change link moves the account to.
ALTER TABLE account_tokens ADD COLUMN new_email TEXT;
-- Admin API tokens: made on the server's machine (`baton-server admin token create`), shown
-- once, stored as SHA-256 digests.
CREATE TABLE admin_tokens (
    name            TEXT PRIMARY KEY,
    token_hash      TEXT NOT NULL UNIQUE,
    scopes          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT,
    last_used_at    BIGINT
);
