#!/usr/bin/env bash
# make dist: the three release artifacts and their checksums, in dist/:
#   oversqlite-<v>-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
#   oversqlite-<v>.tgz                       (npm)
#   oversqlite-<v>-linux-x86_64.tar.gz        (archive)
#   SHA256SUMS
# The binaries are built once (packaging/binaries.sh) and shared by all three.
# Needs the dist tools (make dist-tools): cargo-zigbuild, and DIST_TOOLS, a venv with
# ziglang, hatchling and auditwheel.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$root/dist

bin_dir=$("$root/packaging/binaries.sh")
rm -rf "$out"
mkdir -p "$out"
"$root/packaging/python/build-wheel.sh" "$bin_dir" "$out" >/dev/null
"$root/packaging/npm/pack.sh" "$bin_dir" "$out" >/dev/null
"$root/packaging/archive.sh" "$bin_dir" "$out" >/dev/null
(cd "$out" && sha256sum -- *.whl *.tgz *.tar.gz >SHA256SUMS)

echo "dist/ (binaries for glibc ${DIST_GLIBC:-2.17} and newer):"
(cd "$out" && ls -l --block-size=K -- * | awk '{print "  " $5 "\t" $9}')
