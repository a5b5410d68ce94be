-- oversqlite: local change capture in five statements.
-- Run from the repository root after `cargo build -p oversqlite`:
--   sqlite3 :memory: '.read sql/examples/local_capture.sql'
.load ./target/debug/liboversqlite
.mode list

CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL);
CREATE TABLE posts (
  id TEXT PRIMARY KEY NOT NULL,
  user_id TEXT NOT NULL REFERENCES users(id),
  title TEXT NOT NULL
);

-- Configuration is stored in the database (_oversqlite_config, _oversqlite_tables):
-- a migration runs these once.
SELECT 'server: ' || json_extract(oversqlite_init('https://sync.example.com', 'main'), '$.server_url');
SELECT 'enabled: ' || json_extract(oversqlite_enable_sync('users'), '$.tables[0].table');
SELECT 'enabled: ' || json_extract(oversqlite_enable_sync('posts', 'id'), '$.tables[1].table');

-- Every launch: installs/refreshes the _sync_* tables and triggers (idempotent).
SELECT 'managed: ' || json_extract(oversqlite_open(), '$.managed_tables');

-- Ordinary writes are captured by plain-SQL triggers.
INSERT INTO users VALUES ('u1', 'Ada');
INSERT INTO posts VALUES ('p1', 'u1', 'Hello');
UPDATE users SET name = 'Ada Lovelace' WHERE id = 'u1';

SELECT table_name, key_json, op, payload, state FROM oversqlite_pending;
SELECT binding_state, length(current_source_id) AS source_id_length FROM oversqlite_source_info;
