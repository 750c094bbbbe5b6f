//! The in-process command runner of the unit tests: commands go through the executor as a
//! connection would send them, without a socket, so a test sees the exact reply bytes and
//! the replication stream.

use crate::client::Client;
use crate::config::Config;
use crate::exec::{self, Outcome};
use crate::protocol::Args;
use crate::state::Server;

/// A fresh server with default configuration and one registered client.
pub fn server() -> (Server, Client) {
    let mut srv = Server::new(Config::default());
    let client = Client::new(srv.next_client_id(), None, None, false);
    srv.clients.insert(client.id, client.shared.clone());
    (srv, client)
}

/// Runs one command for `client`; its reply is appended to `out`.
pub fn execute(srv: &mut Server, client: &mut Client, argv: &[&str], out: &mut Vec<u8>) -> Outcome {
    let mut buf = Vec::new();
    let mut ranges = Vec::new();
    for a in argv {
        let start = buf.len();
        buf.extend_from_slice(a.as_bytes());
        ranges.push((start, buf.len()));
    }
    exec::execute(srv, client, Args::new(&buf, &ranges), out)
}

/// Runs commands on a fresh server with the replication feed attached; returns the replies
/// and the stream, as text.
pub fn run_all(cmds: &[&[&str]]) -> (String, String) {
    let (mut srv, mut client) = server();
    srv.feed.attach();
    let mut out = Vec::new();
    for argv in cmds {
        execute(&mut srv, &mut client, argv, &mut out);
    }
    let stream = srv.feed.drain();
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&stream).into_owned(),
    )
}
