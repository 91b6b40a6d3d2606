-- Who pushed last (a token's name), for status and project lists.
ALTER TABLE projects ADD COLUMN IF NOT EXISTS last_author TEXT;
