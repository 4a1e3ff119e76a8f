-- Passkeys (WebAuthn).
-- A user's passkeys: the credential id (base64url, unique across users), the verified public
-- key and its flags as the WebAuthn library keeps them (JSON), and the signature counter.
CREATE TABLE passkeys (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    credential_id   TEXT NOT NULL UNIQUE,
    credential      TEXT NOT NULL,
    sign_count      BIGINT NOT NULL DEFAULT 0,
    name            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT
);
CREATE INDEX passkeys_user ON passkeys (user_id);
-- Ceremonies in progress: a registration (of `user_id`) or a sign-in (for the `requester` that
-- asked: its device id, else its address), with the library's state (the challenge), single
-- use, for five minutes.
CREATE TABLE passkey_challenges (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    user_id         TEXT REFERENCES users(id) ON DELETE CASCADE,
    requester       TEXT,
    state           TEXT NOT NULL,
    name            TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT
);
CREATE INDEX passkey_challenges_expires ON passkey_challenges (expires_at);
