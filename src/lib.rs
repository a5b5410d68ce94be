//! oversqlite: SQLite loadable extension. This file only registers.
