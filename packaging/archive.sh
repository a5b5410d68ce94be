#!/usr/bin/env bash
# archive.sh BIN_DIR OUT_DIR: oversqlite-<version>-linux-x86_64.tar.gz, one top-level
# directory holding liboversqlite.so, oversqlite-server, oversqlite (the CLI), README.md
# and LICENSE.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin_dir=$1 out_dir=$2
name="oversqlite-$("$root/packaging/version.sh")-linux-x86_64"

stage=$root/target/archive
rm -rf "$stage"
mkdir -p "$stage/$name" "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
install -m 0755 "$bin_dir/liboversqlite.so" "$bin_dir/oversqlite-server" "$bin_dir/oversqlite" "$stage/$name/"
install -m 0644 "$root/README.md" "$root/LICENSE" "$stage/$name/"
# Sorted names and fixed owners, so the archive depends on its contents only.
tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner -czf "$out_dir/$name.tar.gz" "$name"
echo "$out_dir/$name.tar.gz"
