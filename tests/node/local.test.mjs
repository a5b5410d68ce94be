// Local runtime through better-sqlite3: configure, open, write, read oversqlite_pending.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir, removeDir, requireBuilt, configured, connect, scalar, report } from './harness.mjs';

let dir;
before(() => { requireBuilt(); dir = tempDir(); });
after(() => removeDir(dir));

test('open reports the managed tables and captures later writes as pending rows', () => {
  const db = configured(join(dir, 'local.db'), 'http://127.0.0.1:9');
  const opened = report(db, 'SELECT oversqlite_open()');
  assert.deepEqual([...opened.managed_tables].sort(), ['files', 'users']);
  db.prepare('INSERT INTO users VALUES (?, ?)').run('u1', 'Ada');
  db.prepare('INSERT INTO files VALUES (?, ?, ?)').run(
    Buffer.from('00112233445566778899aabbccddeeff', 'hex'), 'u1', Buffer.from([0xca, 0xfe]));
  db.prepare("UPDATE users SET name = 'Ada L.' WHERE id = 'u1'").run();
  const pending = db.prepare(
    'SELECT table_name, key_json, op, payload, state FROM oversqlite_pending ORDER BY table_name').all();
  assert.equal(pending.length, 2);
  assert.equal(pending[0].table_name, 'files');
  assert.equal(pending[0].op, 'INSERT');
  assert.equal(pending[0].state, 'dirty');
  assert.equal(pending[1].table_name, 'users');
  assert.equal(JSON.parse(pending[1].key_json).id, 'u1');
  assert.equal(JSON.parse(pending[1].payload).name, 'Ada L.');
  db.close();
});

test('a reopened file keeps its pending rows and keeps capturing', () => {
  const path = join(dir, 'reopen.db');
  const first = configured(path, 'http://127.0.0.1:9');
  report(first, 'SELECT oversqlite_open()');
  first.prepare("INSERT INTO users VALUES ('u1', 'Ada')").run();
  first.close();
  const db = connect(path);
  const opened = report(db, 'SELECT oversqlite_open()');
  assert.equal(opened.first_open, false);
  assert.equal(scalar(db, 'SELECT count(*) FROM oversqlite_pending'), 1);
  db.prepare("INSERT INTO users VALUES ('u2', 'Grace')").run();
  assert.deepEqual(
    db.prepare("SELECT json_extract(key_json, '$.id') FROM oversqlite_pending ORDER BY 1").pluck().all(),
    ['u1', 'u2']);
  db.close();
});

test('errors use the oversqlite_<fn>: <code>: <message> format and change nothing', () => {
  const db = configured(join(dir, 'errors.db'), 'http://127.0.0.1:9');
  assert.throws(() => scalar(db, "SELECT oversqlite_enable_sync('nope')"),
    (e) => e.message.startsWith('oversqlite_enable_sync: invalid_config: '));
  report(db, 'SELECT oversqlite_open()');
  assert.throws(() => scalar(db, 'SELECT oversqlite_sync()'),
    (e) => e.message.startsWith('oversqlite_sync: attach_required: '));
  assert.equal(scalar(db, 'SELECT count(*) FROM oversqlite_pending'), 0);
  db.close();
});
