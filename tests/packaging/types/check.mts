// Type-checked (tsc --noEmit) against the installed package's index.d.ts: the ES module
// entry's named and default exports.
import oversqlite, { getLoadablePath, getServerPath, load, version, type ExtensionLoader } from 'oversqlite';

const library: string = getLoadablePath();
const server: string = getServerPath();
const packageVersion: string = version;
const betterSqlite: ExtensionLoader = { loadExtension: (path: string) => path };
load(betterSqlite);
load({ loadExtension: (path: string) => path, enableLoadExtension: (allow: boolean) => {} });
oversqlite.load(betterSqlite);
// @ts-expect-error: load() needs a database that can load extensions
load({});
export { library, server, packageVersion };
