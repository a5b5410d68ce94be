// Shared helpers for the Node suites: the extension and server paths, a real
// oversqlite-server on a free loopback port, and devices (better-sqlite3 connections
// with liboversqlite loaded).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const EXTENSION = process.env.OVERSQLITE_EXTENSION ?? join(root, 'target', 'debug', 'liboversqlite.so');
export const SERVER_BIN = process.env.OVERSQLITE_SERVER_BIN ?? join(root, 'target', 'debug', 'oversqlite-server');

// The configuration shared with the e2e, Python and shell suites (users, files, ...).
export const SERVER_CONFIG = readFileSync(join(root, 'tests', 'server-config.toml'), 'utf8');

export const SCHEMA = `
CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL);
CREATE TABLE files (id BLOB PRIMARY KEY NOT NULL, owner_id TEXT REFERENCES users(id), data BLOB);
`;

export function tempDir() {
  return mkdtempSync(join(tmpdir(), 'oversqlite-node-'));
}

export function removeDir(dir) {
  rmSync(dir, { recursive: true, force: true });
}

export function requireBuilt() {
  if (!existsSync(EXTENSION)) throw new Error(`${EXTENSION} missing: run cargo build -p oversqlite`);
}

/** Starts oversqlite-server on 127.0.0.1:0 with a store in `dir`; resolves with {url, stop, token}. */
export async function startServer(dir) {
  if (!existsSync(SERVER_BIN)) throw new Error(`${SERVER_BIN} missing: run cargo build -p oversqlite-server`);
  const config = join(dir, 'server.toml');
  writeFileSync(config, SERVER_CONFIG);
  const child = spawn(SERVER_BIN, [
    'serve', '--config', config, '--listen', '127.0.0.1:0', '--data', join(dir, 'server.db'),
    '--jwt-secret', 'node-sync-secret', '--enable-test-endpoints', '--shutdown-grace-ms', '0',
  ], { stdio: ['ignore', 'pipe', 'ignore'] });
  const banner = await new Promise((ok, fail) => {
    const lines = createInterface({ input: child.stdout });
    lines.once('line', (line) => ok(line));
    child.once('exit', (code) => fail(new Error(`oversqlite-server exited (${code}) before listening`)));
  });
  const url = banner.trim().split(' ').pop();
  if (!url.startsWith('http://127.0.0.1:')) {
    child.kill('SIGKILL');
    throw new Error(`unexpected server banner ${banner}`);
  }
  return {
    url,
    async token(user) {
      const resp = await fetch(`${url}/dummy-signin`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ user, password: 'x' }),
      });
      if (resp.status !== 200) throw new Error(`dummy-signin answered ${resp.status}`);
      return (await resp.json()).token;
    },
    stop() {
      return new Promise((ok) => {
        if (child.exitCode !== null || child.signalCode !== null) return ok();
        child.once('exit', () => ok());
        child.kill('SIGKILL');
      });
    },
  };
}

export function connect(path) {
  const db = new Database(path);
  db.loadExtension(EXTENSION);
  return db;
}

export function scalar(db, sql, ...params) {
  return db.prepare(sql).pluck().get(...params);
}

export function report(db, sql, ...params) {
  return JSON.parse(scalar(db, sql, ...params));
}

/** Creates, configures and opens a database file (not attached). */
export function configured(path, serverUrl) {
  const db = connect(path);
  db.exec(SCHEMA);
  scalar(db, 'SELECT oversqlite_init(?, ?)', serverUrl, 'main');
  scalar(db, "SELECT oversqlite_enable_sync('users')");
  scalar(db, "SELECT oversqlite_enable_sync('files')");
  return db;
}
