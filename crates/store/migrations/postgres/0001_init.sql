-- Only adds: a team's existing `projects` table (the seed's schema, with rows) is used as it is.
CREATE TABLE IF NOT EXISTS projects (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name TEXT NOT NULL,
    stack TEXT,
    constraints TEXT,
    intent_md TEXT,
    context_md TEXT,
    spec_md TEXT,
    plan_md TEXT,
    tasks_md TEXT,
    feedback_md TEXT,
    state_json JSONB,
    created_at TIMESTAMPTZ DEFAULT NOW(),
    updated_at TIMESTAMPTZ DEFAULT NOW()
);
ALTER TABLE projects ADD COLUMN IF NOT EXISTS implementation_md TEXT;
ALTER TABLE projects ADD COLUMN IF NOT EXISTS framework TEXT;
ALTER TABLE projects ADD COLUMN IF NOT EXISTS revision BIGINT NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN IF NOT EXISTS last_agent TEXT;
ALTER TABLE projects ADD COLUMN IF NOT EXISTS last_session_id TEXT;
ALTER TABLE projects ADD COLUMN IF NOT EXISTS last_synced TIMESTAMPTZ;
CREATE INDEX IF NOT EXISTS projects_updated_at ON projects (updated_at);

-- Names should be unique, but a team's table may already hold duplicates: then the index is
-- skipped with a warning (creation by name is serialised by an advisory lock either way).
DO $$
BEGIN
    CREATE UNIQUE INDEX IF NOT EXISTS projects_name_key ON projects (name);
EXCEPTION WHEN unique_violation THEN
    RAISE WARNING 'projects.name has duplicates; the unique index projects_name_key was not created';
END
$$;

CREATE TABLE IF NOT EXISTS project_sessions (
    project_id UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    session_id TEXT NOT NULL,
    state_json JSONB,
    session_metadata JSONB,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (project_id, session_id)
);

-- Every accepted text, once.
CREATE TABLE IF NOT EXISTS revisions (
    id BIGSERIAL PRIMARY KEY,
    project_id UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    session_id TEXT NOT NULL,
    artifact TEXT NOT NULL,
    revision BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    text TEXT NOT NULL,
    agent TEXT,
    author TEXT,
    pushed_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS revisions_by_project ON revisions (project_id, id);
CREATE INDEX IF NOT EXISTS revisions_by_hash ON revisions (project_id, sha256);

-- The current text of each stage of each session: a pointer into the history.
CREATE TABLE IF NOT EXISTS documents (
    project_id UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    session_id TEXT NOT NULL,
    artifact TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    revision BIGINT NOT NULL,
    rev_id BIGINT NOT NULL REFERENCES revisions (id),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (project_id, session_id, artifact)
);
