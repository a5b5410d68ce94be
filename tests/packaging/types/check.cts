// Type-checked (tsc --noEmit) against the installed package's index.d.ts: the CommonJS entry.
import oversqlite = require('oversqlite');

const library: string = oversqlite.getLoadablePath();
// @ts-expect-error: the CommonJS exports have no `default`
oversqlite.default;
export = library;
