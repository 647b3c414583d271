-- Console sessions (`/admin`): a signed-in browser holds a random token in an HttpOnly
-- cookie; only its SHA-256 is kept here, with the hash of the API key it was opened with
-- (a session ends when the key changes) and the time it expires.
CREATE TABLE IF NOT EXISTS admin_sessions (
  token_hash TEXT PRIMARY KEY, key_hash TEXT NOT NULL,
  created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS admin_sessions_expiry ON admin_sessions (expires_at);
