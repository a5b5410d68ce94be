// sync_node.mjs VERSION: two devices of one user syncing through oversqlite-server, using
// only what `npm install oversqlite-<VERSION>.tgz better-sqlite3@12` put into this project.
//
// Run by tests/packaging/run.sh from a fresh Node project outside the repository: the
// library comes from node_modules/oversqlite, the server through `npx oversqlite-server`;
// `npx oversqlite` (the command-line tool) then continues both files.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import oversqlite, { getCliPath, getLoadablePath, getServerPath, load, version } from 'oversqlite';

const SERVER_CONFIG = `
app_name = "packaging-test"
schema_version = 1

[[tables]]
schema = "demo"
table = "person"
key = "id"
columns = [
  { name = "id", type = "text", nullable = false },
  { name = "name", type = "text", nullable = false },
]
`;
const ELF_MACHINES = { x64: 62, arm64: 183 };

function check(condition, message) {
  if (!condition) {
    console.error(`sync_node: ${message}`);
    process.exit(1);
  }
}

function elfMachine(path) {
  const head = readFileSync(path).subarray(0, 20);
  check(head.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46])), `${path} is not an ELF file`);
  return head.readUInt16LE(18);
}

function checkInstallation(expectedVersion) {
  const installed = realpathSync(join(process.cwd(), 'node_modules', 'oversqlite'));
  check(version === expectedVersion, `version ${version}, expected ${expectedVersion}`);
  for (const binary of [getLoadablePath(), getServerPath(), getCliPath()]) {
    check(binary.startsWith(`${installed}/`), `${binary} is not inside ${installed}`);
    const machine = elfMachine(binary);
    check(machine === ELF_MACHINES[process.arch], `${binary}: ELF machine ${machine} on ${process.arch}`);
  }
  // The CommonJS entry and the ES module entry are one package.
  const required = createRequire(join(process.cwd(), 'package.json'))('oversqlite');
  check(required.getLoadablePath() === getLoadablePath(), 'require() and import disagree');
  check(oversqlite.load === load, 'the default export is not the package');
  // A platform without a build: a clear error naming it, not a failed dlopen later.
  const other = spawnSync(process.execPath, ['-e',
    "Object.defineProperty(process, 'arch', { value: 'riscv64' }); require('oversqlite').getLoadablePath()"],
  { encoding: 'utf8' });
  check(other.status !== 0 && other.stderr.includes('linux-riscv64') && other.stderr.includes('process.arch riscv64'),
    `no clear error for a missing platform build: ${other.stderr}`);
}

// oversqlite-server through npx, on a free loopback port (port 0), in its own process
// group so that stopping it stops npx, the launcher and the server together.
async function startServer(work, env) {
  const out = join(work, 'server.out');
  const server = spawn('npx', ['--no', 'oversqlite-server', 'serve', '--config', join(work, 'server.toml'),
    '--listen', '127.0.0.1:0', '--data', join(work, 'server.db'), '--shutdown-grace-ms', '0'],
  { env, detached: true, stdio: ['ignore', openSync(out, 'w'), 'inherit'] });
  let exited = null;
  server.on('exit', (code) => { exited = code; });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const url = readFileSync(out, 'utf8').match(/http:\/\/[0-9.:]+/);
    if (url) return { server, url: url[0] };
    check(exited === null, `npx oversqlite-server exited with status ${exited}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  process.kill(-server.pid, 'SIGKILL');
  check(false, 'oversqlite-server printed no address within 30 s');
}

function device(path, url, token) {
  const db = new Database(path);
  load(db);
  const one = (sql, ...args) => db.prepare(sql).pluck().get(...args);
  db.exec('CREATE TABLE person (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL)');
  one("SELECT oversqlite_init(?, 'demo')", url);
  one("SELECT oversqlite_enable_sync('person')");
  one('SELECT oversqlite_open()');
  one('SELECT oversqlite_set_token(?)', token);
  const attach = JSON.parse(one("SELECT oversqlite_attach('alice')"));
  check(attach.status === 'connected', `attach: ${JSON.stringify(attach)}`);
  return {
    db,
    sync: () => JSON.parse(one('SELECT oversqlite_sync()')),
    rows: () => JSON.stringify(db.prepare('SELECT id, name FROM person ORDER BY id').raw().all()),
  };
}

// `npx -- oversqlite --db FILE --json COMMAND` with the token in OVERSQLITE_TOKEN (after `--`, so
// npm keeps none of the tool's options, such as --json or --version, for itself).
function cli(db, command, token) {
  return spawnSync('npx', ['--no', '--', 'oversqlite', '--db', db, '--json', command],
    { env: { ...process.env, OVERSQLITE_TOKEN: token }, encoding: 'utf8' });
}

// The laptop's next change goes up with `npx oversqlite sync`, the phone pulls it with
// `npx oversqlite pull`: files the extension synced continue with the CLI.
function syncWithCli(work, token) {
  const shown = spawnSync('npx', ['--no', '--', 'oversqlite', '--version'], { encoding: 'utf8' });
  check(shown.status === 0 && shown.stdout.trim() === `oversqlite ${version}`, `npx oversqlite --version: ${shown.stdout}${shown.stderr}`);
  const laptop = new Database(join(work, 'laptop.db'));
  laptop.exec("INSERT INTO person VALUES ('p3', 'Grace Hopper')");
  laptop.close();
  const synced = cli(join(work, 'laptop.db'), 'sync', token);
  check(synced.status === 0, `npx oversqlite sync: status ${synced.status}: ${synced.stderr}`);
  check(JSON.parse(synced.stdout).push_outcome === 'committed', `npx oversqlite sync: ${synced.stdout}`);
  const pulled = cli(join(work, 'phone.db'), 'pull', token);
  check(pulled.status === 0, `npx oversqlite pull: status ${pulled.status}: ${pulled.stderr}`);
  const phone = new Database(join(work, 'phone.db'));
  const names = phone.prepare('SELECT name FROM person ORDER BY id').pluck().all().join(',');
  phone.close();
  check(names === 'Ada Lovelace,Alan Turing,Grace Hopper', `phone after npx oversqlite pull: ${names}`);
  console.log('node: npx oversqlite continued both files (sync, pull)');
}

async function syncTwoDevices(work) {
  writeFileSync(join(work, 'server.toml'), SERVER_CONFIG);
  const env = { ...process.env, OVERSQLITE_JWT_SECRET: randomBytes(16).toString('hex') };
  const { server, url } = await startServer(work, env);
  const stopped = new Promise((resolve) => server.on('exit', resolve));
  try {
    const token = execFileSync('npx', ['--no', 'oversqlite-server', 'token', '--config', join(work, 'server.toml'),
      '--user', 'alice'], { env, encoding: 'utf8' }).trim();
    const phone = device(join(work, 'phone.db'), url, token);
    const laptop = device(join(work, 'laptop.db'), url, token);

    phone.db.exec("INSERT INTO person VALUES ('p1', 'Ada Lovelace')");
    check(phone.sync().push_outcome === 'committed', "the phone's push was not committed");
    check(laptop.sync().remote_outcome === 'applied_incremental', 'the laptop pulled nothing');
    check(laptop.rows() === '[["p1","Ada Lovelace"]]', `laptop rows ${laptop.rows()}`);

    laptop.db.exec("INSERT INTO person VALUES ('p2', 'Alan Turing')");
    check(laptop.sync().push_outcome === 'committed', "the laptop's push was not committed");
    phone.sync();
    check(phone.rows() === laptop.rows() && phone.rows() === '[["p1","Ada Lovelace"],["p2","Alan Turing"]]',
      `devices differ: phone ${phone.rows()}, laptop ${laptop.rows()}`);
    phone.db.close();
    laptop.db.close();
    console.log(`node: two devices synced through npx oversqlite-server at ${url}`);
    syncWithCli(work, token);
  } finally {
    process.kill(-server.pid, 'SIGTERM');
    await stopped;
  }
}

// node:sqlite exists from Node 22.5; where it does, load() must work with it too.
async function checkNodeSqlite(work) {
  const sqlite = await import('node:sqlite').catch(() => null);
  if (!sqlite) {
    console.log(`node: node:sqlite is not in Node ${process.version}; load() was checked with better-sqlite3`);
    return;
  }
  const db = new sqlite.DatabaseSync(join(work, 'node-sqlite.db'), { allowExtension: true });
  load(db);
  const config = JSON.parse(db.prepare("SELECT oversqlite_init('http://127.0.0.1:9', 'demo') AS c").get().c);
  check(config.schema === 'demo', `node:sqlite: oversqlite_init returned ${JSON.stringify(config)}`);
  db.close();
  console.log('node: load() works with node:sqlite');
}

const work = mkdtempSync(join(tmpdir(), 'oversqlite-npm-'));
try {
  checkInstallation(process.argv[2]);
  await syncTwoDevices(work);
  await checkNodeSqlite(work);
} finally {
  rmSync(work, { recursive: true, force: true });
}
