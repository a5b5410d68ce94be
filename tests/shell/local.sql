-- Session 1 (extension loaded): configure, open, write, read back.
.load ./target/debug/liboversqlite
.mode list
CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL);
CREATE TABLE files (id BLOB PRIMARY KEY NOT NULL, owner_id TEXT REFERENCES users(id), data BLOB);
-- A row that exists before the first open is captured by it.
INSERT INTO users VALUES ('u0', 'Before');
SELECT json_extract(oversqlite_init('http://localhost:8080', 'main'), '$.schema');
SELECT json_extract(oversqlite_enable_sync('files'), '$.tables[0].sync_key_column');
SELECT json_array_length(oversqlite_enable_sync('users'), '$.tables');
SELECT json_extract(oversqlite_open(), '$.managed_tables', '$.captured_rows', '$.first_open');
SELECT json_extract(oversqlite_open(), '$.triggers_written', '$.first_open');
INSERT INTO users VALUES ('u1', 'Ada');
INSERT INTO files VALUES (x'00112233445566778899aabbccddeeff', 'u1', x'cafe');
SELECT table_name, key_json, op, base_row_version, payload, state, ordinal FROM oversqlite_pending;
SELECT length(current_source_id), rebuild_required, source_recovery_required, binding_state FROM oversqlite_source_info;
-- Errors go to stderr; run.sh checks them.
SELECT oversqlite_enable_sync('nope');
SELECT oversqlite_init(42, 'main');
SELECT 'session 1 done';
