#!/usr/bin/env bash
# Builds the three shipped binaries, liboversqlite.so, oversqlite-server and the
# `oversqlite` command-line tool, for an old
# glibc with cargo-zigbuild (zig links against glibc $DIST_GLIBC's symbol versions), in
# the `dist` profile, and prints the directory that holds them.
#   DIST_TOOLS  venv with the ziglang package (make dist-tools)
#   DIST_GLIBC  oldest glibc the binaries must run on (default 2.17)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${DIST_TOOLS:?set DIST_TOOLS to the dist tools venv (make dist-tools)}"
glibc=${DIST_GLIBC:-2.17}
triple=x86_64-unknown-linux-gnu

# cargo-zigbuild runs `python3 -m ziglang` when there is no `zig` on PATH.
export PATH="$DIST_TOOLS/bin:$PATH"
cd "$root"
# One package per build: the extension's rusqlite `loadable_extension` must never be
# unified with the server's bundled SQLite. SQLITE3_NO_PKG_CONFIG: libsqlite3-sys would
# otherwise ask pkg-config and emit `-lsqlite3`, which zig's linker cannot satisfy (it
# does not search the system's library directories) and the extension must not need.
SQLITE3_NO_PKG_CONFIG=1 cargo zigbuild --profile dist -p oversqlite --target "$triple.$glibc" >&2
cargo zigbuild --profile dist -p oversqlite-server --target "$triple.$glibc" >&2
cargo zigbuild --profile dist -p oversqlite-cli --target "$triple.$glibc" >&2
echo "$root/target/$triple/dist"
