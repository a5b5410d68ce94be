'use strict';
// The prebuilt oversqlite binaries for this platform (prebuilds/<platform>-<arch>/) and a
// loader for better-sqlite3 and node:sqlite databases.
const { existsSync, readdirSync } = require('node:fs');
const { join } = require('node:path');

// The library's file name matters: SQLite derives the entry point
// (sqlite3_oversqlite_init) from it.
const LIBRARY = { darwin: 'liboversqlite.dylib', win32: 'oversqlite.dll' };
const SERVER = { win32: 'oversqlite-server.exe' };
const CLI = { win32: 'oversqlite.exe' };
const DEFAULT_FILES = { library: 'liboversqlite.so', server: 'oversqlite-server', 'command-line tool': 'oversqlite' };

function platformKey() {
  return `${process.platform}-${process.arch}`;
}

function shippedPlatforms() {
  try {
    return readdirSync(join(__dirname, 'prebuilds')).join(', ') || 'none';
  } catch {
    return 'none';
  }
}

function prebuilt(names, what) {
  const file = names[process.platform] ?? DEFAULT_FILES[what];
  const path = join(__dirname, 'prebuilds', platformKey(), file);
  if (!existsSync(path)) {
    throw new Error(
      `oversqlite: no prebuilt ${what} for ${platformKey()} (process.platform ${process.platform}, ` +
        `process.arch ${process.arch}); this package ships builds for: ${shippedPlatforms()}. ` +
        'Build oversqlite from source for this platform and load that file instead.',
    );
  }
  return path;
}

/** Absolute path of the extension library for this platform. */
function getLoadablePath() {
  return prebuilt(LIBRARY, 'library');
}

/** Absolute path of the oversqlite-server binary for this platform. */
function getServerPath() {
  return prebuilt(SERVER, 'server');
}

/** Absolute path of the `oversqlite` command-line tool for this platform. */
function getCliPath() {
  return prebuilt(CLI, 'command-line tool');
}

/**
 * Loads the extension into `db`: a better-sqlite3 Database, or a node:sqlite
 * DatabaseSync opened with `{ allowExtension: true }`.
 */
function load(db) {
  const path = getLoadablePath();
  // node:sqlite: loading must be switched on per database, and is switched off again
  // afterwards so SQL run later cannot load other libraries.
  if (db && typeof db.enableLoadExtension === 'function') {
    try {
      db.enableLoadExtension(true);
    } catch (cause) {
      throw new Error(
        'oversqlite.load: this node:sqlite database does not allow extensions; ' +
          'open it with new DatabaseSync(file, { allowExtension: true })',
        { cause },
      );
    }
    try {
      db.loadExtension(path);
    } finally {
      db.enableLoadExtension(false);
    }
    return;
  }
  if (db && typeof db.loadExtension === 'function') {
    db.loadExtension(path);
    return;
  }
  throw new TypeError('oversqlite.load: expected a better-sqlite3 Database or a node:sqlite DatabaseSync');
}

const { version } = require('./package.json');

module.exports = { getLoadablePath, getServerPath, getCliPath, load, version };
