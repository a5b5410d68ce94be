#!/usr/bin/env bash
# build-wheel.sh BIN_DIR OUT_DIR: the `oversqlite` wheel from the prebuilt binaries in
# BIN_DIR (packaging/binaries.sh), tagged for the glibc they were built for, then
# checked with `auditwheel show`: the wheel fails here if its binaries need a newer
# glibc, or a library outside the manylinux set, than its tag promises.
#   DIST_TOOLS  venv with hatchling and auditwheel (make dist-tools)
#   DIST_GLIBC  the glibc the binaries were built for (default 2.17)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin_dir=$1 out_dir=$2
: "${DIST_TOOLS:?set DIST_TOOLS to the dist tools venv (make dist-tools)}"
glibc=${DIST_GLIBC:-2.17}
policy="manylinux_${glibc/./_}_x86_64"
# manylinux2014 is the older name of manylinux_2_17, for pip releases before 20.3.
platform=$policy
[[ $glibc == 2.17 ]] && platform="$policy.manylinux2014_x86_64"

mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
rm -f "$out_dir"/oversqlite-*.whl
(cd "$here" && OVERSQLITE_LIB="$bin_dir/liboversqlite.so" OVERSQLITE_SERVER="$bin_dir/oversqlite-server" OVERSQLITE_CLI="$bin_dir/oversqlite" \
  OVERSQLITE_WHEEL_PLATFORM="$platform" "$DIST_TOOLS/bin/python" -m hatchling build -t wheel -d "$out_dir" >&2)
wheel=$(ls "$out_dir"/oversqlite-*.whl)

report=$("$DIST_TOOLS/bin/auditwheel" show "$wheel" 2>&1) || { echo "$report" >&2; exit 1; }
echo "$report" >&2
# auditwheel wraps its report at any space: compare with the whitespace collapsed.
if ! tr -s ' \n' '  ' <<<"$report" | grep -q "consistent with the following platform tag: \"$policy\""; then
  echo "build-wheel.sh: auditwheel does not confirm $policy for $wheel" >&2
  exit 1
fi
echo "$wheel"
