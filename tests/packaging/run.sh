#!/usr/bin/env bash
# make test-packaging: the artifacts of `make dist` checked file by file, then installed
# as a user installs them, each into a fresh place outside the repository:
#   * the wheel alone into a fresh venv (Debian's python3 -m venv, pip --no-index);
#   * the npm tarball into a fresh Node project, with better-sqlite3 and typescript;
# and each one syncs two devices through the oversqlite-server it installed, then
# continues both files with the `oversqlite` command-line tool it installed; the archive
# is unpacked and its CLI run.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$root/tests/packaging
dist=$root/dist
version=$("$root/packaging/version.sh")
: "${DIST_TOOLS:?set DIST_TOOLS to the dist tools venv (make dist-tools)}"
policy="manylinux_${DIST_GLIBC:-2.17}_x86_64" && policy=${policy/./_}

work=$(mktemp -d "${TMPDIR:-/tmp}/oversqlite-packaging.XXXXXX")
trap 'rm -rf "$work"' EXIT
# The installed packages run with only these variables: nothing such as
# OVERSQLITE_EXTENSION or PYTHONPATH from the caller may point back into the repository.
clean_env=(env -i "HOME=$HOME" "TMPDIR=$work" "LANG=C.UTF-8")

echo "== artifacts"
/usr/bin/python3 "$here/check_artifacts.py" "$dist" "$version"
wheel=$(ls "$dist"/oversqlite-"$version"-py3-none-manylinux_*.whl)
"$DIST_TOOLS/bin/auditwheel" show "$wheel" | tr -s ' \n' '  ' | grep -q "consistent with the following platform tag: \"$policy\"" \
  || { echo "auditwheel does not confirm $policy for $wheel" >&2; exit 1; }
echo "auditwheel: $(basename "$wheel") is $policy"

echo "== Python: the wheel alone in a fresh venv"
/usr/bin/python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --no-index --disable-pip-version-check "$wheel"
mkdir "$work/python" && cp "$here/sync_python.py" "$work/python/"
(cd "$work/python" && "${clean_env[@]}" "PATH=$work/venv/bin:/usr/bin:/bin" python sync_python.py "$version")

echo "== Node: the npm tarball in a fresh project"
# better-sqlite3 is installed at the version tests/node builds, without its install
# script, and given the addon that `make node-deps` compiled: the same source and the
# same Node, so it is the addon npm would build, without a second two-minute compile.
better_sqlite3=$(node -p "require('$root/tests/node/package.json').devDependencies['better-sqlite3']")
addon=$root/tests/node/node_modules/better-sqlite3/build/Release/better_sqlite3.node
[[ -f $addon ]] || { echo "missing $addon (make node-deps)" >&2; exit 1; }
project=$work/node
mkdir "$project" && cp "$here/sync_node.mjs" "$project/" && cp -r "$here/types" "$project/"
(cd "$project" && npm init -y >/dev/null \
  && npm install --no-audit --no-fund --ignore-scripts --loglevel=error \
       "$dist/oversqlite-$version.tgz" "better-sqlite3@$better_sqlite3" typescript@5 >/dev/null)
mkdir -p "$project/node_modules/better-sqlite3/build/Release"
cp "$addon" "$project/node_modules/better-sqlite3/build/Release/"
(cd "$project" && "${clean_env[@]}" "PATH=/usr/bin:/bin" node sync_node.mjs "$version")
(cd "$project/types" && "${clean_env[@]}" "PATH=/usr/bin:/bin" ../node_modules/.bin/tsc -p . \
  && echo "node: index.d.ts type-checks (ES module and CommonJS entries)")

echo "== Archive: unpacked, its command-line tool run"
mkdir "$work/archive" && tar -C "$work/archive" -xzf "$dist/oversqlite-$version-linux-x86_64.tar.gz"
archive_cli=$work/archive/oversqlite-$version-linux-x86_64/oversqlite
shown=$("${clean_env[@]}" "$archive_cli" --version)
[[ $shown == "oversqlite $version" ]] || { echo "archive: oversqlite --version printed '$shown'" >&2; exit 1; }
status=0; "${clean_env[@]}" "$archive_cli" --db "$work/archive/missing.db" status 2>/dev/null || status=$?
[[ $status == 66 ]] || { echo "archive: oversqlite on a missing file exited $status, expected 66" >&2; exit 1; }
: > "$work/archive/empty.db"
journal=$("${clean_env[@]}" "$archive_cli" --db "$work/archive/empty.db" --json log)
[[ $journal == "[]" ]] || { echo "archive: oversqlite log on a file that never synced printed '$journal', expected []" >&2; exit 1; }
echo "archive: $shown runs (exit 66 on a missing database file, an empty journal from log)"

echo "packaging: 4 passed, 0 failed"
