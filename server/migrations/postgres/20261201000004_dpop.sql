-- DPoP (RFC 9449): the RFC 7638 thumbprint of the key a session is bound to; NULL for a
-- Bearer session.
ALTER TABLE sessions ADD COLUMN dpop_jkt TEXT;

-- DPoP proofs seen within the proof window, by SHA-256 (hex) of key thumbprint and jti: a
-- proof is accepted once across every instance sharing the database.
CREATE TABLE dpop_proofs (
    id          TEXT PRIMARY KEY,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX dpop_proofs_expiry ON dpop_proofs (expires_at);
