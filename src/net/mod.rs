//! What connecting to a peer needs beside the protocol: the target URL (`url`), TLS streams and
//! their client settings (`tls`), the token that is carried but never shown (`secret`),
//! newline-delimited messages over a process's pipes (`stdio`), and a WebSocket upgrade that
//! leaves the connection the read buffer it was configured with (`upgrade`).
//! Names nothing else of the crate, so the engine, the server and config can all use it.

pub mod http;
pub mod secret;
pub mod stdio;
pub mod tls;
pub mod upgrade;
pub mod url;
