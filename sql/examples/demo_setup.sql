-- oversqlite demo, device setup (what an app's migration runs once). Used by
-- scripts/demo.sh (`make demo`) for both devices. To run it by hand against a server
-- registering demo.person (scripts/demo-server.toml):
--   sqlite3 phone.db
--   .load ./target/release/liboversqlite
--   .parameter set @server_url "'http://127.0.0.1:8080'"
--   .read sql/examples/demo_setup.sql
CREATE TABLE person (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, email TEXT);

-- Where the server is and which remote schema holds the synced tables.
SELECT json_extract(oversqlite_init(@server_url, 'demo'), '$.schema') AS remote_schema;
-- Which local tables sync (the sync key defaults to the primary key).
SELECT json_extract(oversqlite_enable_sync('person'), '$.tables[0].table') AS synced_table;
-- Installs the capture triggers and the _sync_* tables; every launch runs it again.
SELECT json_extract(oversqlite_open(), '$.managed_tables') AS managed;
