-- SQLite is only ever created by the gateway. The seed's `projects` shape is a view: the base
-- table `project_rows` keeps the stage texts out of the row, so a push never rewrites a 70 KiB
-- record. Ids are text; times are microseconds since the epoch, so that they sort.
CREATE TABLE IF NOT EXISTS project_rows (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    stack TEXT,
    constraints TEXT,
    state_json TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    framework TEXT,
    revision INTEGER NOT NULL DEFAULT 0,
    last_agent TEXT,
    last_session_id TEXT,
    last_synced INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS project_rows_name_key ON project_rows (name);
CREATE INDEX IF NOT EXISTS project_rows_updated_at ON project_rows (updated_at);

CREATE TABLE IF NOT EXISTS project_sessions (
    project_id TEXT NOT NULL REFERENCES project_rows (id),
    session_id TEXT NOT NULL,
    state_json TEXT,
    session_metadata TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, session_id)
);

-- Every accepted text, once.
CREATE TABLE IF NOT EXISTS revisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id TEXT NOT NULL REFERENCES project_rows (id),
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

-- The current text of each stage of each session: a pointer into the history.
CREATE TABLE IF NOT EXISTS documents (
    project_id TEXT NOT NULL REFERENCES project_rows (id),
    session_id TEXT NOT NULL,
    artifact TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    revision INTEGER NOT NULL,
    rev_id INTEGER NOT NULL REFERENCES revisions (id),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, session_id, artifact)
) WITHOUT ROWID;

-- A document is derived: it always points at its stage's newest revision, so one insert into
-- the history is the whole write of a changed stage.
CREATE TRIGGER IF NOT EXISTS revisions_move_documents AFTER INSERT ON revisions
BEGIN
    INSERT INTO documents (project_id, session_id, artifact, sha256, revision, rev_id, updated_at)
    VALUES (NEW.project_id, NEW.session_id, NEW.artifact, NEW.sha256, NEW.revision, NEW.id, NEW.pushed_at)
    ON CONFLICT (project_id, session_id, artifact) DO UPDATE SET
        sha256 = excluded.sha256, revision = excluded.revision, rev_id = excluded.rev_id,
        updated_at = excluded.updated_at;
END;

CREATE VIEW IF NOT EXISTS projects AS
SELECT p.id, p.name, p.stack, p.constraints,
    (SELECT r.text FROM documents d JOIN revisions r ON r.id = d.rev_id
     WHERE d.project_id = p.id AND d.session_id = p.last_session_id AND d.artifact = 'intent_md') AS intent_md,
    (SELECT r.text FROM documents d JOIN revisions r ON r.id = d.rev_id
     WHERE d.project_id = p.id AND d.session_id = p.last_session_id AND d.artifact = 'context_md') AS context_md,
    (SELECT r.text FROM documents d JOIN revisions r ON r.id = d.rev_id
     WHERE d.project_id = p.id AND d.session_id = p.last_session_id AND d.artifact = 'spec_md') AS spec_md,
    (SELECT r.text FROM documents d JOIN revisions r ON r.id = d.rev_id
     WHERE d.project_id = p.id AND d.session_id = p.last_session_id AND d.artifact = 'plan_md') AS plan_md,
    (SELECT r.text FROM documents d JOIN revisions r ON r.id = d.rev_id
     WHERE d.project_id = p.id AND d.session_id = p.last_session_id AND d.artifact = 'tasks_md') AS tasks_md,
    (SELECT r.text FROM documents d JOIN revisions r ON r.id = d.rev_id
     WHERE d.project_id = p.id AND d.session_id = p.last_session_id AND d.artifact = 'feedback_md') AS feedback_md,
    p.state_json, p.created_at, p.updated_at,
    (SELECT r.text FROM documents d JOIN revisions r ON r.id = d.rev_id
     WHERE d.project_id = p.id AND d.session_id = p.last_session_id AND d.artifact = 'implementation_md') AS implementation_md,
    p.framework, p.revision, p.last_agent, p.last_session_id, p.last_synced
FROM project_rows p;
