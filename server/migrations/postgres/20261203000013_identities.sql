-- Sign-in through identity providers (OpenID Connect, GitHub).
-- An identity: the provider's name in the providers file and its subject for the user (the
-- `sub` claim, GitHub's numeric user id), linked to one account.
CREATE TABLE identities (
    provider        TEXT NOT NULL,
    subject         TEXT NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email           TEXT,
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT,
    PRIMARY KEY (provider, subject)
);
-- One identity per provider and account.
CREATE UNIQUE INDEX identities_user ON identities (user_id, provider);
-- Flows in progress, from `/auth/oauth/{provider}/start` to its callback: the state's HMAC
-- (the PKCE verifier and the nonce are derived from the state, never stored), the HMAC of
-- the browser cookie that must come back with it, where to return, and the account a link
-- flow is for. Single use, ten minutes.
CREATE TABLE oauth_flows (
    state_hash      TEXT PRIMARY KEY,
    provider        TEXT NOT NULL,
    browser_hash    TEXT NOT NULL,
    redirect_to     TEXT NOT NULL,
    link_user_id    TEXT REFERENCES users(id) ON DELETE CASCADE,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT
);
CREATE INDEX oauth_flows_expires ON oauth_flows (expires_at);
-- One-time codes handed to the app in `?baton_code=` (their HMAC), traded once for the
-- session by the browser that started the flow, within 60 seconds.
CREATE TABLE oauth_codes (
    code_hash       TEXT PRIMARY KEY,
    browser_hash    TEXT NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider        TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT
);
CREATE INDEX oauth_codes_expires ON oauth_codes (expires_at);
