//! Values between the wire and the application tables: the codecs (wire keys and
//! payloads to and from local rows, typed equivalence), reading and writing one
//! application row. The wire-value grammar itself (UUID text, base64, numbers,
//! RFC 3339) is `oversqlite_protocol::values`, shared with the server.

pub mod codec;
pub mod rows;
