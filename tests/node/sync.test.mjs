// Sync core flow through better-sqlite3 against a real oversqlite-server on loopback:
// two database files as two devices of one user write, sync and see each other's rows.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir, removeDir, requireBuilt, startServer, configured, scalar, report } from './harness.mjs';

let dir;
let server;
let a;
let b;

async function device(name) {
  const db = configured(join(dir, `${name}.db`), server.url);
  report(db, 'SELECT oversqlite_open()');
  scalar(db, 'SELECT oversqlite_set_token(?)', await server.token('alice'));
  const attached = report(db, "SELECT oversqlite_attach('alice')");
  assert.notEqual(attached.outcome, 'retry_later');
  return db;
}

before(async () => {
  requireBuilt();
  dir = tempDir();
  server = await startServer(dir);
  a = await device('device_a');
  b = await device('device_b');
});

after(async () => {
  a?.close();
  b?.close();
  await server?.stop();
  removeDir(dir);
});

const fileId = Buffer.from('0f1e2d3c4b5a69788796a5b4c3d2e1f0', 'hex');

test('a row written on device A reaches device B', () => {
  a.prepare("INSERT INTO users VALUES ('u1', 'Ada')").run();
  a.prepare('INSERT INTO files VALUES (?, ?, ?)').run(fileId, 'u1', Buffer.from([0, 1, 2, 255]));
  const pushed = report(a, 'SELECT oversqlite_sync()');
  assert.equal(pushed.push_outcome, 'committed');
  assert.equal(pushed.status.pending.pending_row_count, 0);
  const pulled = report(b, 'SELECT oversqlite_sync()');
  assert.equal(pulled.remote_outcome, 'applied_incremental');
  assert.deepEqual(pulled.changed_tables, ['files', 'users']);
  assert.deepEqual(b.prepare('SELECT id, name FROM users').all(), [{ id: 'u1', name: 'Ada' }]);
  const file = b.prepare('SELECT id, owner_id, data FROM files').get();
  assert.ok(Buffer.from(file.id).equals(fileId));
  assert.equal(file.owner_id, 'u1');
  assert.deepEqual([...file.data], [0, 1, 2, 255]);
});

test('an update and a delete from device B reach device A', () => {
  b.prepare("UPDATE users SET name = 'Ada Lovelace' WHERE id = 'u1'").run();
  b.prepare('DELETE FROM files WHERE id = ?').run(fileId);
  assert.equal(report(b, 'SELECT oversqlite_sync()').push_outcome, 'committed');
  report(a, 'SELECT oversqlite_sync()');
  assert.deepEqual(a.prepare('SELECT id, name FROM users').all(), [{ id: 'u1', name: 'Ada Lovelace' }]);
  assert.equal(scalar(a, 'SELECT count(*) FROM files'), 0);
});

test('sync inside a transaction is refused with transaction_open', () => {
  a.exec('BEGIN');
  a.prepare("INSERT INTO users VALUES ('u2', 'Grace')").run();
  assert.throws(() => scalar(a, 'SELECT oversqlite_sync()'),
    (e) => e.message.startsWith('oversqlite_sync: transaction_open: '));
  a.exec('COMMIT');
  assert.equal(report(a, 'SELECT oversqlite_sync()').push_outcome, 'committed');
  report(b, 'SELECT oversqlite_sync()');
  assert.deepEqual(b.prepare('SELECT id FROM users ORDER BY id').pluck().all(), ['u1', 'u2']);
});
