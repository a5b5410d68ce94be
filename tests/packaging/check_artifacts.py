"""check_artifacts.py DIST VERSION: the files inside each artifact of `make dist`.

Every artifact must hold exactly the files listed here (one missing or one extra fails),
its binaries must be executable ELF files for this machine's architecture, and
SHA256SUMS must name the three artifacts with their real digests. Run by
tests/packaging/run.sh with Debian's python3; reads the artifacts only, installs nothing.
"""

import hashlib
import io
import json
import platform
import sys
import tarfile
import zipfile
from pathlib import Path

# ELF e_machine of the architecture the artifacts must be built for.
MACHINES = {"x86_64": 62, "aarch64": 183}


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"check_artifacts: {message}")


def check_elf(name: str, data: bytes, mode: int) -> None:
    check(data[:4] == b"\x7fELF", f"{name} is not an ELF file")
    check(data[4] == 2 and data[5] == 1, f"{name} is not a 64-bit little-endian ELF file")
    machine = int.from_bytes(data[18:20], "little")
    want = MACHINES[platform.machine()]
    check(machine == want, f"{name} is built for ELF machine {machine}, this machine is {want}")
    check(mode & 0o111 != 0, f"{name} is not executable (mode {oct(mode)})")


def check_members(artifact: str, found: set, expected: set) -> None:
    check(found == expected, f"{artifact}: missing {sorted(expected - found)}, unexpected {sorted(found - expected)}")


def check_wheel(path: Path, version: str) -> None:
    data_dir = f"oversqlite-{version}.data"
    info = f"oversqlite-{version}.dist-info"
    binaries = {"oversqlite/liboversqlite.so", f"{data_dir}/scripts/oversqlite-server", f"{data_dir}/scripts/oversqlite"}
    with zipfile.ZipFile(path) as wheel:
        check_members(
            path.name,
            set(wheel.namelist()),
            binaries
            | {"oversqlite/__init__.py", "oversqlite/py.typed"}
            | {f"{info}/{n}" for n in ("METADATA", "WHEEL", "RECORD")},
        )
        for name in binaries:
            check_elf(f"{path.name}:{name}", wheel.read(name), wheel.getinfo(name).external_attr >> 16)
        wheel_info = wheel.read(f"{info}/WHEEL").decode()
        metadata = wheel.read(f"{info}/METADATA").decode()
    check("Root-Is-Purelib: false" in wheel_info, "the wheel claims to be pure Python")
    # The file name's platform tags must be the ones the WHEEL file declares.
    platforms = path.name[: -len(".whl")].split("-")[-1].split(".")
    for tag in platforms:
        check(f"Tag: py3-none-{tag}" in wheel_info, f"WHEEL does not declare py3-none-{tag}")
    check(f"Version: {version}\n" in metadata, f"METADATA does not give version {version}")


def check_npm(path: Path, version: str) -> None:
    binaries = {f"package/prebuilds/linux-x64/{n}" for n in ("liboversqlite.so", "oversqlite-server", "oversqlite")}
    with tarfile.open(path) as tgz:
        members = {m.name: m for m in tgz.getmembers() if m.isfile()}
        check_members(
            path.name,
            set(members),
            binaries
            | {f"package/{n}" for n in ("package.json", "index.js", "index.mjs", "index.d.ts", "README.md", "LICENSE")}
            | {"package/bin/oversqlite-server", "package/bin/oversqlite", "package/bin/forward.js"},
        )
        for name in binaries:
            check_elf(f"{path.name}:{name}", tgz.extractfile(name).read(), members[name].mode)
        manifest = json.load(io.BytesIO(tgz.extractfile("package/package.json").read()))
    check(manifest["name"] == "oversqlite" and manifest["version"] == version, f"package.json is {manifest['name']}@{manifest['version']}")
    check(manifest["bin"] == {"oversqlite-server": "bin/oversqlite-server", "oversqlite": "bin/oversqlite"}, "package.json bin")
    check("better-sqlite3" not in manifest.get("dependencies", {}), "better-sqlite3 must be a peer dependency only")
    check(manifest["peerDependenciesMeta"]["better-sqlite3"]["optional"] is True, "better-sqlite3 peer is not optional")


def check_archive(path: Path, version: str) -> None:
    top = f"oversqlite-{version}-linux-x86_64"
    binaries = {f"{top}/liboversqlite.so", f"{top}/oversqlite-server", f"{top}/oversqlite"}
    with tarfile.open(path) as archive:
        members = {m.name: m for m in archive.getmembers() if m.isfile()}
        check_members(path.name, set(members), binaries | {f"{top}/README.md", f"{top}/LICENSE"})
        for name in binaries:
            check_elf(f"{path.name}:{name}", archive.extractfile(name).read(), members[name].mode)


def check_sums(dist: Path, artifacts: list) -> None:
    listed = {}
    for line in (dist / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name.lstrip("*")] = digest
    check(set(listed) == {a.name for a in artifacts}, f"SHA256SUMS lists {sorted(listed)}")
    for artifact in artifacts:
        check(hashlib.sha256(artifact.read_bytes()).hexdigest() == listed[artifact.name], f"{artifact.name}: SHA256SUMS mismatch")


def main(dist: Path, version: str) -> None:
    wheels = list(dist.glob(f"oversqlite-{version}-py3-none-manylinux_*.whl"))
    check(len(wheels) == 1, f"expected one wheel in {dist}, found {[w.name for w in wheels]}")
    npm = dist / f"oversqlite-{version}.tgz"
    archive = dist / f"oversqlite-{version}-linux-x86_64.tar.gz"
    check_wheel(wheels[0], version)
    check_npm(npm, version)
    check_archive(archive, version)
    check_sums(dist, [wheels[0], npm, archive])
    print(f"artifacts: {wheels[0].name}, {npm.name}, {archive.name} hold every file; checksums match")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
