//! Values between the wire and the application tables: the codecs (wire keys and
//! payloads to and from local rows, typed equivalence), reading and writing one
//! application row, and RFC 3339 instants.

pub mod codec;
pub mod rfc3339;
pub mod rows;
