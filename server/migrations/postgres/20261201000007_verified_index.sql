-- Every instance asks each second which addresses were verified lately (so it can forget the
-- users it cached without the verification; see `sessions::VerifiedWatch`).
CREATE INDEX users_email_verified_at ON users (email_verified_at);
