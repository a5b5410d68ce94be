// ES module entry: the same functions as the CommonJS entry (index.js).
import { createRequire } from 'node:module';

const oversqlite = createRequire(import.meta.url)('./index.js');

export const { getLoadablePath, getServerPath, getCliPath, load, version } = oversqlite;
export default oversqlite;
