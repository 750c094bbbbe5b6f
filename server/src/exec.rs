//! Command execution: lookup, the checks Redis makes before running a command (auth, arity,
//! MULTI queueing, memory), the handler call, then the after-effects of a write (replication
//! feed, WATCH invalidation, waking blocked clients) in that order.

use crate::client::{Client, OwnedArgs};
use crate::cmd::{self, Block, CmdError, Ctx, Propagate, Spec, flags};
use crate::protocol::{Args, Reply};
use crate::server::Server;

/// What the connection must do after a command.
#[derive(Debug)]
pub enum Outcome {
    Continue,
    /// Wait for one of the keys (or the timeout), then run the command again.
    Block(Block, OwnedArgs),
    /// Close the connection once the output is flushed.
    Close,
}

/// Runs one command for `client`, appending its reply to `out`.
pub fn execute(
    srv: &mut Server,
    client: &mut Client,
    args: Args<'_>,
    out: &mut Vec<u8>,
) -> Outcome {
    let Some(spec) = cmd::lookup(args.get(0)) else {
        let msg = unknown_command(args);
        if client.multi.is_some() {
            client.multi_error = true;
        }
        reply_error(srv, client, out, &msg);
        return Outcome::Continue;
    };
    if let Some(err) = refusal(srv, client, spec, args) {
        if client.multi.is_some() && !spec.is(flags::NO_MULTI_QUEUE) {
            client.multi_error = true;
        }
        reply_error(srv, client, out, &err);
        return Outcome::Continue;
    }
    if let Some(queue) = client.multi.as_mut()
        && !spec.is(flags::NO_MULTI_QUEUE)
    {
        queue.push(OwnedArgs::from_args(args));
        Reply::new(out, client.proto).simple("QUEUED");
        return Outcome::Continue;
    }
    if spec.name == "exec" {
        return exec(srv, client, out);
    }
    let outcome = call(srv, client, spec, args, out);
    after_command(srv, client);
    outcome
}

/// Why the command must not run now, as the error line Redis would send.
fn refusal(srv: &mut Server, client: &Client, spec: &Spec, args: Args<'_>) -> Option<String> {
    if !client.authenticated && !spec.is(flags::NO_AUTH) {
        return Some("NOAUTH Authentication required.".into());
    }
    if !spec.arity_ok(args.len()) {
        return Some(cmd::arity_error(spec.name).text().to_string());
    }
    if spec.is(flags::WRITE)
        && !client.is_master
        && srv.repl.is_replica()
        && srv.config.replica_read_only
    {
        return Some("READONLY You can't write against a read only replica.".into());
    }
    if let Some(m) = srv.repl.master.as_ref()
        && m.state != crate::replication::replica::LinkState::Connected
        && !srv.config.replica_serve_stale_data
        && !spec.is(flags::STALE)
    {
        return Some(
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
                .into(),
        );
    }
    if spec.is(flags::WRITE)
        && !client.is_master
        && !srv.repl.is_replica()
        && srv.config.min_replicas_to_write > 0
        && srv.config.min_replicas_max_lag > 0
        && (srv.repl.good_replicas(srv.config.min_replicas_max_lag) as u64)
            < srv.config.min_replicas_to_write
    {
        return Some("NOREPLICAS Not enough good replicas to write.".into());
    }
    if spec.is(flags::DENYOOM) && !srv.make_room(crate::clock::now_ms()) {
        return Some(CmdError::Oom.text().to_string());
    }
    None
}

/// Runs the handler, writes its reply or error, and applies a write's after-effects.
fn call(
    srv: &mut Server,
    client: &mut Client,
    spec: &'static Spec,
    args: Args<'_>,
    out: &mut Vec<u8>,
) -> Outcome {
    let dirty_before = srv.dirty;
    let db_before = client.db;
    let started = std::time::Instant::now();
    let mark = out.len();
    let (result, block, propagate, touched) = {
        let mut ctx = Ctx::new(srv, client, out);
        let r = (spec.handler)(&mut ctx, args);
        (
            r,
            ctx.block.take(),
            std::mem::take(&mut ctx.propagate),
            ctx.touched.take(),
        )
    };
    let stat = srv.stats.command_calls.entry(spec.name).or_default();
    stat.0 += 1;
    stat.1 += started.elapsed().as_micros() as u64;
    srv.stats.total_commands_processed += 1;
    if let Err(e) = result {
        out.truncate(mark);
        reply_error(srv, client, out, e.text());
        return Outcome::Continue;
    }
    if let Some(b) = block {
        return Outcome::Block(b, OwnedArgs::from_args(args));
    }
    if spec.is(flags::WRITE) && srv.dirty != dirty_before {
        let db = db_before;
        // The master's own bytes are proxied by the replica link, never re-encoded here.
        let propagate = if client.is_master {
            Propagate::Nothing
        } else {
            propagate
        };
        match propagate {
            Propagate::Verbatim if srv.feed.is_active() => {
                srv.feed.feed(db, &args.iter().collect::<Vec<_>>())
            }
            Propagate::Verbatim => {}
            Propagate::Nothing => {}
            Propagate::Rewrite(cmds) => {
                // Several effects of one command reach replicas atomically, as Redis 7.0
                // wraps them (SPOP with a count -> SREMs in MULTI/EXEC).
                let wrap = cmds.len() > 1 && !srv.feed.in_atomic();
                if wrap {
                    srv.feed.begin_atomic();
                }
                cmds.iter().for_each(|c| srv.feed.feed(db, c));
                if wrap {
                    srv.feed.end_atomic();
                }
            }
        }
        match touched {
            Some(keys) => keys.iter().for_each(|k| srv.touch_key(db, k)),
            None => spec
                .key_indices(args.len())
                .for_each(|i| srv.touch_key(db, args.get(i))),
        }
    }
    if client.close_after_reply {
        Outcome::Close
    } else {
        Outcome::Continue
    }
}

/// EXEC: runs the queued commands atomically, unless a WATCHed key changed or a command was
/// refused while queueing.
fn exec(srv: &mut Server, client: &mut Client, out: &mut Vec<u8>) -> Outcome {
    let Some(queue) = client.multi.take() else {
        reply_error(srv, client, out, "ERR EXEC without MULTI");
        return Outcome::Continue;
    };
    let aborted = std::mem::take(&mut client.multi_error);
    let dirty_cas = client.shared.dirty_cas.get();
    srv.unwatch_all(client);
    if aborted {
        reply_error(
            srv,
            client,
            out,
            "EXECABORT Transaction discarded because of previous errors.",
        );
        return Outcome::Continue;
    }
    if dirty_cas {
        Reply::new(out, client.proto).null_array();
        return Outcome::Continue;
    }
    Reply::new(out, client.proto).array(queue.len());
    srv.feed.begin_atomic();
    for q in &queue {
        let args = q.as_args();
        let Some(spec) = cmd::lookup(args.get(0)) else {
            continue;
        };
        // Blocking commands inside MULTI behave as if the timeout expired at once.
        if let Outcome::Block(..) = call(srv, client, spec, args, out) {
            Reply::new(out, client.proto).null_array();
        }
    }
    srv.feed.end_atomic();
    after_command(srv, client);
    Outcome::Continue
}

fn after_command(srv: &mut Server, client: &mut Client) {
    client.woff = srv.feed.offset;
    let mut info = client.shared.info.borrow_mut();
    info.db = client.db;
    info.multi = client.multi.as_ref().map_or(-1, |q| q.len() as i64);
}

fn reply_error(srv: &mut Server, client: &Client, out: &mut Vec<u8>, msg: &str) {
    srv.stats.total_error_replies += 1;
    let code = msg.split(' ').next().unwrap_or("ERR").to_string();
    *srv.stats.error_counts.entry(code).or_default() += 1;
    Reply::new(out, client.proto).error(msg);
}

/// Redis's text for an unknown command, quoting up to the first arguments.
fn unknown_command(args: Args<'_>) -> String {
    let name = String::from_utf8_lossy(&args.get(0)[..args.get(0).len().min(128)]).into_owned();
    let mut msg = format!("ERR unknown command '{name}', with args beginning with: ");
    for a in args.iter().skip(1) {
        if msg.len() >= 128 + 60 {
            break;
        }
        msg.push('\'');
        msg.push_str(&String::from_utf8_lossy(&a[..a.len().min(128)]));
        msg.push_str("' ");
    }
    msg
}
