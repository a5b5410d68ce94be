"""oversqlite: offline-first, multi-device sync for any SQLite database, driven from SQL.

    import sqlite3, oversqlite

    conn = sqlite3.connect("app.db", isolation_level=None)  # autocommit, see below
    oversqlite.load(conn)
    conn.execute("SELECT oversqlite_init(?, ?)", ("http://127.0.0.1:8080", "demo"))

Use the connection in autocommit (``isolation_level=None``, or ``autocommit=True`` on
Python 3.12+): the sync functions refuse to run inside an open transaction, and the
module's default mode opens one implicitly before every INSERT, UPDATE or DELETE.

The package also installs the ``oversqlite-server`` command, the sync server, and the
``oversqlite`` command-line tool (``oversqlite --db app.db sync``).
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["ExtensionLoadingUnavailable", "__version__", "load", "loadable_path"]

__version__: str = metadata.version("oversqlite")

# The file name matters: SQLite derives the entry point (sqlite3_oversqlite_init) from it.
_LIBRARY = {"linux": "liboversqlite.so", "darwin": "liboversqlite.dylib", "win32": "oversqlite.dll"}


class ExtensionLoadingUnavailable(RuntimeError):
    """The sqlite3 module of this Python was built without extension loading."""


def loadable_path() -> str:
    """The absolute path of the extension library shipped in this package."""
    name = _LIBRARY.get(sys.platform, "liboversqlite.so")
    path = Path(__file__).resolve().with_name(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"oversqlite: this installation has no {name} for {sys.platform} "
            f"(looked for {path}); install a wheel built for this platform, "
            "or build the extension from source and load that file"
        )
    return str(path)


def _no_loading_message(conn: Any) -> str:
    return (
        f"oversqlite.load: {type(conn).__module__}.{type(conn).__name__} cannot load "
        f"extensions in this Python ({sys.executable}): its sqlite3 module was built "
        "without --enable-loadable-sqlite-extensions, as pyenv builds and some macOS "
        "builds are. Use a Python that has it (Debian's or Ubuntu's /usr/bin/python3, "
        "Homebrew's python), or rebuild with pyenv: "
        "PYTHON_CONFIGURE_OPTS=--enable-loadable-sqlite-extensions pyenv install <version>"
    )


def load(conn: Any) -> None:
    """Loads the extension into ``conn`` (a ``sqlite3.Connection`` or a compatible one).

    Extension loading is switched on only for the load and off again afterwards, so SQL
    run later on the connection cannot load other libraries.
    """
    enable = getattr(conn, "enable_load_extension", None)
    if enable is None:
        raise ExtensionLoadingUnavailable(_no_loading_message(conn))
    path = loadable_path()
    try:
        enable(True)
    except Exception as error:  # e.g. "not authorized" where loading is compiled out
        raise ExtensionLoadingUnavailable(_no_loading_message(conn)) from error
    try:
        conn.load_extension(path)
    finally:
        enable(False)
