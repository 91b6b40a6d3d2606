-- Bearer tokens of a team gateway: only their SHA-256 is kept.
CREATE TABLE IF NOT EXISTS gateway_tokens (
    name TEXT PRIMARY KEY NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    read_only INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
