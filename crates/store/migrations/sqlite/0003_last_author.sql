-- Who pushed last (a token's name), for status and project lists.
ALTER TABLE project_rows ADD COLUMN last_author TEXT;
