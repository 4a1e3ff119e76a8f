-- The admin API lists users by creation, then id (keyset pages).
CREATE INDEX users_created ON users (created_at, id);
