#!/usr/bin/env bash
# pack.sh BIN_DIR OUT_DIR: the `oversqlite` npm tarball. The package sources here are
# staged under target/npm-package with the prebuilt binaries (prebuilds/linux-x64/),
# LICENSE and the workspace version, then `npm pack`ed into OUT_DIR.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
bin_dir=$1 out_dir=$2
version=$("$root/packaging/version.sh")

stage=$root/target/npm-package
rm -rf "$stage"
mkdir -p "$stage/prebuilds/linux-x64" "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
cp -r "$here/package.json" "$here/README.md" "$here/index.js" "$here/index.mjs" "$here/index.d.ts" "$here/bin" "$stage/"
cp "$root/LICENSE" "$stage/"
install -m 0755 "$bin_dir/liboversqlite.so" "$bin_dir/oversqlite-server" "$bin_dir/oversqlite" "$stage/prebuilds/linux-x64/"
(cd "$stage" && npm pkg set "version=$version" && npm pack --silent --pack-destination "$out_dir" >/dev/null)
echo "$out_dir/oversqlite-$version.tgz"
