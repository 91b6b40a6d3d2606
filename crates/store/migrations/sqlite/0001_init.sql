-- The seed's `projects` table plus the columns IDSE Desk adds; SQLite stores ids as text and
-- times as microseconds since the epoch so that they sort.
CREATE TABLE IF NOT EXISTS projects (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    stack TEXT,
    constraints TEXT,
    intent_md TEXT,
    context_md TEXT,
    spec_md TEXT,
    plan_md TEXT,
    tasks_md TEXT,
    feedback_md TEXT,
    state_json TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    implementation_md TEXT,
    framework TEXT,
    revision INTEGER NOT NULL DEFAULT 0,
    last_agent TEXT,
    last_session_id TEXT,
    last_synced INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS projects_name_key ON projects (name);
CREATE INDEX IF NOT EXISTS projects_updated_at ON projects (updated_at);

CREATE TABLE IF NOT EXISTS project_sessions (
    project_id TEXT NOT NULL REFERENCES projects (id),
    session_id TEXT NOT NULL,
    state_json TEXT,
    session_metadata TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, session_id)
);

CREATE TABLE IF NOT EXISTS documents (
    project_id TEXT NOT NULL REFERENCES projects (id),
    session_id TEXT NOT NULL,
    artifact TEXT NOT NULL,
    text TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    revision INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, session_id, artifact)
);

CREATE TABLE IF NOT EXISTS revisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id TEXT NOT NULL REFERENCES projects (id),
    session_id TEXT NOT NULL,
    artifact TEXT NOT NULL,
    revision INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    text TEXT NOT NULL,
    agent TEXT,
    author TEXT,
    pushed_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS revisions_by_project ON revisions (project_id, id);
CREATE INDEX IF NOT EXISTS revisions_by_hash ON revisions (project_id, sha256);
