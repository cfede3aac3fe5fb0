//! What connecting to a peer needs beside the protocol: the target URL (`url`), TLS streams and
//! their client settings (`tls`), the token that is carried but never shown (`secret`), and
//! newline-delimited messages over a process's pipes (`stdio`).
//! Names nothing else of the crate, so the engine, the server and config can all use it.

pub mod http;
pub mod secret;
pub mod stdio;
pub mod tls;
pub mod url;
