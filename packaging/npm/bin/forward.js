'use strict';
// Runs a prebuilt binary of this package with the wrapper's arguments and standard
// streams, passes termination signals on, and exits as it exits (dies of the same
// signal when it was killed), so `npx oversqlite-server` and `npx oversqlite` behave
// like the binaries themselves (exit codes included: the CLI's 75 means retry later).
const { spawn } = require('node:child_process');

function forward(name, locate) {
  let binary;
  try {
    binary = locate();
  } catch (error) {
    console.error(error.message);
    process.exit(1);
  }
  const child = spawn(binary, process.argv.slice(2), { stdio: 'inherit' });
  const forwarded = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const signal of forwarded) {
    process.on(signal, () => child.kill(signal));
  }
  child.on('error', (error) => {
    console.error(`${name}: cannot run ${binary}: ${error.message}`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    if (signal) {
      for (const s of forwarded) process.removeAllListeners(s);
      process.kill(process.pid, signal);
    } else {
      process.exit(code ?? 1);
    }
  });
}

module.exports = { forward };
