-- Row level security, with no policy, on the gateway's own tables: only their owner (the role
-- the gateway runs as, which created them) and superusers reach their rows. Supabase grants
-- every table in `public` to its `anon` and `authenticated` roles and serves them through its
-- Data API, so without this anyone holding a project's public anon key could read every
-- document's history and write into it. Idempotent; no row or column is touched. A table the
-- gateway's role does not own is left as it is, with a warning: enabling it there would fail
-- (only an owner may) and would shut the gateway out of it. `projects` belongs to the team,
-- whose own clients may read it, and is left as it is.
DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['project_sessions', 'revisions', 'documents', 'gateway_tokens',
                             '_sqlx_migrations'] LOOP
        IF pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = to_regclass(t)),
                       'USAGE') THEN
            EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        ELSE
            RAISE WARNING 'table % is not owned by the role % the gateway runs as; row level security left as it is', t, current_user;
        END IF;
    END LOOP;
END
$$;
