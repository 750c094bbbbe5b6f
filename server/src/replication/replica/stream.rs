//! `Connected`: the master's stream applied as the master client and proxied into our own
//! stream (backlog and sub-replicas), with an ACK every second and on GETACK.

use super::conn::{Conn, LinkError, TIMEOUT_STREAM};
use crate::client::Client;
use crate::exec;
use crate::protocol::{Parser, ProtoLimits};
use crate::state::Shared;
use std::time::Duration;

/// Applies the master's stream as the master client, proxies it to our own stream (backlog
/// and sub-replicas), ACKs every second, and answers GETACK.
pub(super) async fn apply(state: &Shared, mut conn: Conn) -> Result<(), LinkError> {
    let mut client = {
        let mut srv = state.borrow_mut();
        let id = srv.next_client_id();
        let mut c = Client::new(id, None, None, false);
        c.is_master = true;
        c.db = srv.repl.master.as_ref().map_or(0, |m| m.db);
        c.shared.info.borrow_mut().flags = "M".into();
        srv.clients.insert(id, c.shared.clone());
        c
    };
    let result = stream_loop(state, &mut conn, &mut client).await;
    let mut srv = state.borrow_mut();
    if let Some(m) = srv.repl.master.as_mut() {
        m.db = client.db;
    }
    srv.unregister_client(&mut client);
    result
}

async fn stream_loop(
    state: &Shared,
    conn: &mut Conn,
    client: &mut Client,
) -> Result<(), LinkError> {
    let mut parser = Parser::new();
    let mut sink = Vec::new();
    let mut next_ack = tokio::time::Instant::now();
    loop {
        let ack = {
            let mut srv = state.borrow_mut();
            let srv = &mut *srv;
            srv.now_ms = crate::clock::now_ms();
            loop {
                let before = parser.consumed();
                let limits = ProtoLimits {
                    max_bulk_len: srv.config.proto_max_bulk_len as i64,
                    auth_required: false,
                };
                let args = match parser.next(&conn.buf, limits) {
                    Ok(Some(a)) => a,
                    Ok(None) => break,
                    Err(e) => {
                        return Err(LinkError::Msg(format!("Protocol error from MASTER: {e}")));
                    }
                };
                exec::execute(srv, client, args, &mut sink);
                sink.clear();
                let after = parser.consumed();
                srv.feed.feed_raw(&conn.buf[before..after]);
            }
            crate::replication::pump(srv);
            let consumed = parser.consumed();
            conn.buf.drain(..consumed);
            parser.compact(consumed);
            srv.repl.master.as_mut().and_then(|m| m.getack.take())
        };
        if let Some(off) = ack {
            conn.send(&[b"REPLCONF", b"ACK", off.to_string().as_bytes()])
                .await?;
        }
        if tokio::time::Instant::now() >= next_ack {
            let (off, last_io, timeout) = {
                let srv = state.borrow();
                let m = srv.repl.master.as_ref().ok_or(LinkError::Gone)?;
                (srv.feed.offset, m.last_io_ms, srv.config.repl_timeout)
            };
            if crate::clock::now_ms().saturating_sub(last_io) > timeout * 1000 {
                return Err(LinkError::Msg(TIMEOUT_STREAM.into()));
            }
            conn.send(&[b"REPLCONF", b"ACK", off.to_string().as_bytes()])
                .await?;
            next_ack += Duration::from_secs(1);
        }
        tokio::select! {
            r = conn.fill(TIMEOUT_STREAM) => {
                let n = r?;
                let mut srv = state.borrow_mut();
                let m = srv.repl.master.as_mut().ok_or(LinkError::Gone)?;
                m.read_off += n as u64;
                m.last_io_ms = crate::clock::now_ms();
            }
            () = tokio::time::sleep_until(next_ack) => {}
        }
    }
}
