-- Every push sets projects.updated_at; with it indexed, no such update could be HOT (written in
-- place on its page), so each push left a dead row version and index entries behind that
-- lookups by id then stepped over: after 24,000 pushes to 17 projects, 24,000 dead versions and
-- a push twice as slow. The project list sorts a few hundred rows without it. This index is the
-- gateway's own (0001 made it); no column or row is touched.
DROP INDEX IF EXISTS projects_updated_at;
