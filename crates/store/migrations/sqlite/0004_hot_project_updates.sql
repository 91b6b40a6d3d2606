-- Every push sets project_rows.updated_at, so its index cost one more page written per push;
-- the project list sorts a few hundred rows without it (as on Postgres, see its 0004).
DROP INDEX IF EXISTS project_rows_updated_at;
