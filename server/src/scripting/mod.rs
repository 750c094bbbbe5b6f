//! Lua scripting, as Redis 7.0 embeds it: Lua 5.1 with the `redis` API, the libraries
//! scripts rely on (`cjson`, `cmsgpack`, `bit`, `struct`), globals that scripts can read but
//! never change, and the conversions between Lua values and replies.
//!
//! A script's commands run through the executor like any client's, so their checks, stats
//! and replication are the ones every command gets; this module reaches the executor only
//! through [`Host`], which keeps it below the command table. The interpreter itself lives in
//! the server's state ([`crate::state::scripting`]).

mod api;
mod chunk;
mod convert;
mod engine;
pub mod functions;
pub mod libs;
mod run;
mod shebang;

pub use chunk::{compile, sha1_hex};
pub use engine::interpreter;
pub use run::{Host, Invocation, Target, invoke};
pub use shebang::parse_shebang;
