// Types for both entries: CommonJS (index.js, `require('oversqlite')`) and ES module
// (index.mjs), whose default export is the same object as the CommonJS exports.

/** A database that can load an extension: better-sqlite3's Database. */
export interface ExtensionLoader {
  loadExtension(path: string, entryPoint?: string): unknown;
}

/** node:sqlite's DatabaseSync (opened with `{ allowExtension: true }`). */
export interface ExtensionToggle extends ExtensionLoader {
  enableLoadExtension(allow: boolean): void;
}

/**
 * Absolute path of the extension library for this platform.
 * Throws, naming `process.platform` and `process.arch`, when the package has no build for it.
 */
export function getLoadablePath(): string;

/** Absolute path of the oversqlite-server binary for this platform (also `npx oversqlite-server`). */
export function getServerPath(): string;

/** Absolute path of the `oversqlite` command-line tool for this platform (also `npx -- oversqlite ...`). */
export function getCliPath(): string;

/** Loads the extension into a better-sqlite3 Database or a node:sqlite DatabaseSync. */
export function load(db: ExtensionLoader | ExtensionToggle): void;

/** The package version. */
export const version: string;
