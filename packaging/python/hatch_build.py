"""Wheel build hook: puts the prebuilt binaries into the wheel and tags it.

The binaries come from `make dist` (cargo-zigbuild for an old glibc), named by:
  OVERSQLITE_LIB           liboversqlite.so  -> oversqlite/liboversqlite.so (package data)
  OVERSQLITE_SERVER        oversqlite-server -> the wheel's scripts (on PATH once installed)
  OVERSQLITE_CLI           oversqlite        -> the wheel's scripts (the command-line tool)
  OVERSQLITE_WHEEL_PLATFORM the platform tag the binaries really satisfy, checked afterwards
                           with `auditwheel show` (e.g. manylinux_2_17_x86_64)
"""

import os

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def _required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise RuntimeError(f"{name} is not set: build the wheel through `make dist`")
    return value


def _existing_file(name: str) -> str:
    path = _required(name)
    if not os.path.isfile(path):
        raise RuntimeError(f"{name}={path} does not exist: build the binaries first (make dist)")
    return path


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel":
            return
        build_data["pure_python"] = False
        build_data["tag"] = f"py3-none-{_required('OVERSQLITE_WHEEL_PLATFORM')}"
        build_data["force_include"][_existing_file("OVERSQLITE_LIB")] = "oversqlite/liboversqlite.so"
        build_data["shared_scripts"][_existing_file("OVERSQLITE_SERVER")] = "oversqlite-server"
        build_data["shared_scripts"][_existing_file("OVERSQLITE_CLI")] = "oversqlite"
