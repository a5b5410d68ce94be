-- Session 2: a sqlite3 WITHOUT the extension. The capture triggers are plain SQL.
UPDATE users SET name = 'Ada Lovelace' WHERE id = 'u1';
DELETE FROM users WHERE id = 'u0';
SELECT 'session 2 done';
