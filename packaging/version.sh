#!/usr/bin/env bash
# Prints the project version: Cargo.toml's [workspace.package] version, the one source of
# truth for the crates, the wheel, the npm package and the archive.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
/usr/bin/python3 -c '
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print(tomllib.load(f)["workspace"]["package"]["version"])' "$root/Cargo.toml"
