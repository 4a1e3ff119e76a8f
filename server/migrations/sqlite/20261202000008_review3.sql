-- Who asked for a mailed sign-in code (the device id, else the client address): a code is
-- tried, and replaced by a newer request, only by the same requester, so a stranger can
-- neither use up the tries of the owner's code nor make it die by asking again.
ALTER TABLE email_codes ADD COLUMN requested_by TEXT NOT NULL DEFAULT '';
CREATE INDEX email_codes_requester ON email_codes (email, requested_by, created_at);
-- The purge drops codes and account tokens past their lifetime.
CREATE INDEX email_codes_expires ON email_codes (expires_at);
CREATE INDEX account_tokens_expires ON account_tokens (expires_at);
-- Settings a deployment's instances must agree on, fixed by the first start (the default
-- issuer when BATON_PUBLIC_URL is not set).
CREATE TABLE server_settings (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
