//! oversqlite local runtime: schema, triggers, configuration and durable state.
