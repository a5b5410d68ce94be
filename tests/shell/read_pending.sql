-- Session 3 (extension loaded): the plain session's writes are pending.
.load ./target/debug/liboversqlite
.mode list
SELECT table_name, key_json, op, base_row_version, payload, state, ordinal FROM oversqlite_pending;
