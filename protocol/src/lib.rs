//! go-oversync wire protocol: types shared by the oversqlite extension and oversqlite-server.
