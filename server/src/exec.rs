//! Command execution: lookup, the checks Redis makes before running a command (arity, auth,
//! memory, RESP2 subscribed mode), CLIENT PAUSE, MULTI queueing, the handler call, then the
//! after-effects of a write (replication feed, WATCH invalidation, waking blocked clients) in
//! that order. CLIENT REPLY OFF/SKIP is applied here by dropping the command's reply bytes.
//! It never touches sockets: waiting (blocked, paused) is the connection's job.

use crate::access::{self, Place};
use crate::client::{Client, OwnedArgs};
use crate::cmd::{self, CmdError, Ctx, Propagate, Spec, flags};
use crate::keyspace::SmallBytes;
use crate::protocol::{Args, Protocol, Reply};
use crate::state::blocking::Block;
use crate::state::replication::feed::Scope;
use crate::state::scripting::ScriptRun;
use crate::state::{MASTERDOWN, NOREPLICAS, READONLY_REPLICA, Server};
use std::borrow::Cow;

/// What the connection must do after a command.
#[derive(Debug)]
pub enum Outcome {
    Continue,
    /// Wait for one of the keys (or the timeout), then run the command again.
    Block(Block, OwnedArgs),
    /// Close the connection once the output is flushed.
    Close,
    /// CLIENT PAUSE holds this command: run it again once the pause is over.
    Paused(OwnedArgs),
}

/// Runs one command for `client`, appending its reply to `out` unless CLIENT REPLY
/// OFF/SKIP suppresses it.
pub fn execute(
    srv: &mut Server,
    client: &mut Client,
    args: Args<'_>,
    out: &mut Vec<u8>,
) -> Outcome {
    let mark = out.len();
    let skip = std::mem::take(&mut client.reply_skip);
    srv.current_client = client.id;
    let outcome = dispatch(srv, client, args, out);
    if let Outcome::Paused(_) = outcome {
        // Not run yet: the skip belongs to its later run.
        client.reply_skip = skip;
        srv.current_client = 0;
        return outcome;
    }
    if client.reply_off || skip {
        out.truncate(mark);
    }
    if std::mem::take(&mut client.reply_skip_next) {
        client.reply_skip = true;
    }
    // CLIENT CACHING applies to the next command or transaction only.
    if client.multi.is_none() && !args.get(0).eq_ignore_ascii_case(b"client") {
        client.tracking_caching = false;
    }
    after_top_level(srv, client, out);
    outcome
}

/// After a command the client sent (not one inside EXEC or a script): the invalidations it
/// caused, its own following its reply, pushes even under CLIENT REPLY OFF, as in Redis.
fn after_top_level(srv: &mut Server, client: &Client, out: &mut Vec<u8>) {
    if srv.tracking.is_active() {
        let own = cmd::deliver_invalidations(srv, Some((client.id, client.proto)));
        out.extend_from_slice(&own);
    }
    srv.current_client = 0;
}

fn dispatch(srv: &mut Server, client: &mut Client, args: Args<'_>, out: &mut Vec<u8>) -> Outcome {
    let Some(spec) = cmd::names::lookup(&srv.commands, args.get(0)) else {
        client.shared.info.borrow_mut().last_cmd = Cow::Borrowed("NULL");
        let msg = unknown_command(args.iter());
        if client.multi.is_some() {
            client.multi_error = true;
        }
        reply_error(srv, client, out, &msg);
        return Outcome::Continue;
    };
    let name = full_name(spec, args);
    client.shared.info.borrow_mut().last_cmd = name.clone();
    if let Some(err) = refusal(srv, client, spec, args, &name) {
        if let Some(name) = cmd::stat_name(spec, args) {
            srv.stats.command_failures.entry(name).or_default().0 += 1;
        }
        if spec.name == "exec" {
            // A refused EXEC ends any transaction and says why (Redis's execCommandAbort),
            // inside MULTI or not.
            client.multi = None;
            client.multi_error = false;
            srv.unwatch_all(client);
            let why = err.strip_prefix("ERR ").unwrap_or(&err);
            let msg = format!("EXECABORT Transaction discarded because of: {why}");
            reply_error(srv, client, out, &msg);
            after_command(srv, client);
            return Outcome::Continue;
        }
        if client.multi.is_some() && !spec.is(flags::NO_MULTI_QUEUE) {
            client.multi_error = true;
        }
        reply_error(srv, client, out, &err);
        return Outcome::Continue;
    }
    if must_wait(srv, client, spec) {
        return Outcome::Paused(OwnedArgs::from_args(args));
    }
    if let Some(queue) = client.multi.as_mut()
        && !spec.is(flags::NO_MULTI_QUEUE)
    {
        queue.push(OwnedArgs::from_args(args));
        Reply::new(out, client.proto).simple("QUEUED");
        after_command(srv, client);
        return Outcome::Continue;
    }
    if spec.name == "exec" {
        let mark = out.len();
        let outcome = exec(srv, client, out);
        feed_monitors(srv, client, Mode::Direct, args);
        srv.stats.command_calls.entry("exec").or_default().0 += 1;
        if out.get(mark) == Some(&b'-') {
            srv.stats.command_failures.entry("exec").or_default().1 += 1;
        }
        return outcome;
    }
    let outcome = call(srv, client, spec, args, out, Mode::Direct);
    after_command(srv, client);
    outcome
}

/// Runs a blocked client's command again because `key` was written (see
/// [`crate::blocking`]). No admission checks: the command was admitted when it blocked.
pub fn rerun_blocked(
    srv: &mut Server,
    client: &mut Client,
    args: Args<'_>,
    key: &SmallBytes,
    out: &mut Vec<u8>,
) -> Outcome {
    let Some(spec) = cmd::names::lookup(&srv.commands, args.get(0)) else {
        return Outcome::Continue;
    };
    srv.current_client = client.id;
    let outcome = call(srv, client, spec, args, out, Mode::Woken(key));
    after_top_level(srv, client, out);
    // A command that blocks again has not completed: the client's write offset stays where
    // it blocked (WAIT's target must not move to bytes fed since, such as its own GETACK).
    if !matches!(outcome, Outcome::Block(..) | Outcome::Paused(_)) {
        after_command(srv, client);
    }
    outcome
}

/// How a command is being run.
#[derive(Debug, Clone, Copy)]
enum Mode<'k> {
    /// Sent by the client.
    Direct,
    /// Queued in MULTI, run by EXEC: it may not block.
    InExec,
    /// Re-run for a blocked client because this key was written.
    Woken(&'k SmallBytes),
    /// Called by a script: it may not block, and its write reaches replicas only if the
    /// script replicates (`redis.set_repl`).
    Script { replicate: bool },
}

/// Container commands: CLIENT LIST and errors name their subcommands `container|sub`.
const CONTAINERS: &[&str] = &[
    "acl", "client", "cluster", "command", "config", "function", "latency", "memory", "module",
    "object", "pubsub", "script", "slowlog", "xgroup", "xinfo",
];

/// The command's name as Redis reports it (`get`, `client|list`).
fn full_name(spec: &'static Spec, args: Args<'_>) -> Cow<'static, str> {
    if args.len() >= 2 && CONTAINERS.contains(&spec.name) {
        let sub = String::from_utf8_lossy(args.get(1)).to_ascii_lowercase();
        Cow::Owned(format!("{}|{sub}", spec.name))
    } else {
        Cow::Borrowed(spec.name)
    }
}

/// Whether CLIENT PAUSE holds this command: every command under PAUSE ALL; under PAUSE
/// WRITE the ones that may replicate (writes, PUBLISH, and an EXEC queueing any of them).
fn must_wait(srv: &Server, client: &Client, spec: &Spec) -> bool {
    let Some((_, writes_only)) = srv.pause else {
        return false;
    };
    if !srv.paused(crate::clock::now_ms()) {
        return false;
    }
    if !writes_only {
        return true;
    }
    let replicates = |s: &Spec| s.is(flags::WRITE | flags::MAY_REPLICATE);
    replicates(spec)
        || (spec.name == "exec"
            && client.multi.iter().flatten().any(|q| {
                cmd::names::lookup(&srv.commands, q.as_args().get(0)).is_some_and(replicates)
            }))
}

/// Why the command must not run now, as the error line Redis would send.
fn refusal(
    srv: &mut Server,
    client: &Client,
    spec: &Spec,
    args: Args<'_>,
    name: &str,
) -> Option<String> {
    // Redis checks arity (and a container's subcommand) before authentication.
    if !spec.arity_ok(args.len()) {
        return Some(cmd::arity_error(spec.name).text().to_string());
    }
    if let Some(e) = cmd::subcommand_error(spec, args) {
        return Some(e);
    }
    if !client.authenticated && !spec.is(flags::NO_AUTH) {
        return Some("NOAUTH Authentication required.".into());
    }
    if client.multi.is_some() && spec.is(flags::NO_MULTI) {
        return Some("ERR Command not allowed inside a transaction".into());
    }
    if let Some(e) = access::refusal(srv, client, spec, args, Place::Direct) {
        return Some(e);
    }
    if spec.is(flags::WRITE) && !client.is_master && srv.read_only_replica() {
        return Some(READONLY_REPLICA.into());
    }
    if srv.stale() && !spec.is(flags::STALE) {
        return Some(MASTERDOWN.into());
    }
    if spec.is(flags::WRITE) && !client.is_master && srv.lacks_good_replicas() {
        return Some(NOREPLICAS.into());
    }
    // The batch's cached clock, as Redis uses its cached mstime: no clock read per write.
    if spec.is(flags::DENYOOM) && !srv.make_room(srv.now_ms) {
        return Some(CmdError::Oom.text().to_string());
    }
    if writes_denied_by_disk_error(srv) && (spec.is(flags::WRITE) || spec.name == "ping") {
        return Some(MISCONF.into());
    }
    if let Some(errno) = crate::aof::writer::write_error(srv)
        && (spec.is(flags::WRITE) || spec.name == "ping")
    {
        return Some(format!(
            "MISCONF Errors writing to the AOF file: {}",
            crate::state::persistence::strerror(&std::io::Error::from_raw_os_error(errno))
        ));
    }
    // RESP2 has no out-of-band replies: a subscribed client can only manage subscriptions.
    if client.proto == Protocol::Resp2 && client.in_pubsub() && !spec.is(flags::SUBSCRIBED_OK) {
        return Some(format!(
            "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
        ));
    }
    if srv.persistence.loading.is_some() && !spec.is(flags::LOADING)
        || srv.persistence.async_loading && spec.is(flags::NO_ASYNC_LOADING)
    {
        return Some("LOADING Redis is loading the dataset in memory".into());
    }
    None
}

const MISCONF: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";

/// Redis's `writeCommandsDeniedByDiskError`: the last background save failed, save points
/// are configured and `stop-writes-on-bgsave-error` is on.
fn writes_denied_by_disk_error(srv: &Server) -> bool {
    srv.config.stop_writes_on_bgsave_error
        && !srv.config.save.is_empty()
        && !srv.persistence.last_bgsave_ok
}

/// Shows a command to the MONITOR clients, with the database it ran in; a woken command was
/// shown when it first ran.
fn feed_monitors(srv: &mut Server, client: &Client, mode: Mode<'_>, args: Args<'_>) {
    if srv.monitors.is_empty() || matches!(mode, Mode::Woken(_)) {
        return;
    }
    let addr = client.shared.info.borrow().addr.clone();
    let source = match mode {
        Mode::Script { .. } => cmd::MonitorSource::Script,
        _ => cmd::MonitorSource::Client(&addr),
    };
    cmd::feed_monitors(srv, client.db, source, args);
}

/// Runs the handler, writes its reply or error, and applies a write's after-effects.
fn call(
    srv: &mut Server,
    client: &mut Client,
    spec: &'static Spec,
    args: Args<'_>,
    out: &mut Vec<u8>,
    mode: Mode<'_>,
) -> Outcome {
    // A script is shown before the commands it runs.
    if spec.is(flags::SKIP_MONITOR) {
        feed_monitors(srv, client, mode, args);
    }
    let dirty_before = srv.dirty;
    let db_before = client.db;
    let started = std::time::Instant::now();
    let mark = out.len();
    let (result, block, propagate, touched) = {
        let mut ctx = Ctx::new(srv, client, out, script_call);
        match mode {
            Mode::Direct => {}
            Mode::InExec => ctx.may_block = false,
            Mode::Script { .. } => {
                ctx.may_block = false;
                ctx.from_script = true;
            }
            Mode::Woken(key) => ctx.woken_by = Some(key.clone()),
        }
        let r = (spec.handler)(&mut ctx, args);
        let propagate = match mode {
            Mode::Script { replicate: false } => Propagate::Nothing,
            _ => std::mem::take(&mut ctx.propagate),
        };
        let block = ctx.block.take().map(|b| (b, ctx.block_command.take()));
        (r, block, propagate, ctx.touched.take())
    };
    let own_events = cmd::publish_events(srv, Some((client.id, client.proto)));
    let micros = started.elapsed().as_micros() as u64;
    let stat_name = cmd::stat_name(spec, args).unwrap_or(spec.name);
    // Redis 7.0 counts a blocking command once, when it is called; serving it later adds
    // only its time.
    let counted = !matches!(mode, Mode::Woken(_));
    let stat = srv.stats.command_calls.entry(stat_name).or_default();
    if counted {
        stat.0 += 1;
    }
    stat.1 += micros;
    {
        let info = client.shared.info.borrow();
        srv.slowlog.record(
            srv.config.slowlog_log_slower_than,
            srv.config.slowlog_max_len,
            micros,
            args.iter(),
            &info.addr,
            client.name.as_deref().unwrap_or_default(),
        );
    }
    if counted {
        srv.stats.total_commands_processed += 1;
    }
    let threshold_ms = srv.config.latency_monitor_threshold;
    if threshold_ms > 0 && micros / 1000 >= threshold_ms {
        let event = if spec.is(flags::FAST) {
            "fast-command"
        } else {
            "command"
        };
        srv.latency
            .add_sample(event, micros / 1000, srv.now_ms / 1000);
    }
    // Administrative commands are too dangerous to show.
    if !spec.is(flags::ADMIN | flags::SKIP_MONITOR) {
        feed_monitors(srv, client, mode, args);
    }
    // A command that blocks is timed when it completes, as Redis does on unblocking.
    if srv.config.latency_tracking && block.is_none() {
        srv.latency.record_command(stat_name, micros);
    }
    if let Err(e) = result {
        srv.stats.command_failures.entry(stat_name).or_default().1 += 1;
        out.truncate(mark);
        reply_error(srv, client, out, e.text());
        place_before(out, mark, own_events);
        return Outcome::Continue;
    }
    place_before(out, mark, own_events);
    if let Some((b, command)) = block {
        return Outcome::Block(b, command.unwrap_or_else(|| OwnedArgs::from_args(args)));
    }
    if srv.tracking.is_active() && !matches!(mode, Mode::Script { .. }) {
        cmd::remember_reads(srv, client, spec, args);
    }
    // A read may ask to be propagated too (PFCOUNT writing its cached cardinality).
    if (spec.is(flags::WRITE) && srv.dirty != dirty_before) || propagate == Propagate::Always {
        let db = db_before;
        // The master's own bytes are proxied by the replica link, never re-encoded here; a
        // replica's stream is its master's alone, so what its own clients change (a
        // writable replica's writes, PFCOUNT's cache) stays local, as in Redis: it reaches
        // the replica's own AOF only.
        let scope = if client.is_master || srv.repl.is_replica() {
            Scope::Aof
        } else {
            Scope::All
        };
        match propagate {
            Propagate::Verbatim | Propagate::Always if srv.feed.is_active() => {
                srv.feed
                    .feed_to(db, &args.iter().collect::<Vec<_>>(), scope)
            }
            Propagate::Verbatim | Propagate::Always => {}
            Propagate::Nothing => {}
            Propagate::Rewrite(cmds) => {
                // Several effects of one command reach replicas atomically, as Redis 7.0
                // wraps them (SPOP with a count -> SREMs in MULTI/EXEC).
                let wrap = cmds.len() > 1 && !srv.feed.in_atomic();
                if wrap {
                    srv.feed.begin_atomic();
                }
                cmds.iter().for_each(|c| srv.feed.feed_to(db, c, scope));
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
    srv.expire_watched(client);
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
    client.in_exec = true;
    for q in &queue {
        let args = q.as_args();
        let Some(spec) = cmd::names::lookup(&srv.commands, args.get(0)) else {
            continue;
        };
        // The rules may have changed since the command was queued.
        if let Some(e) = access::refusal(srv, client, spec, args, Place::Exec) {
            reply_error(srv, client, out, &e);
            continue;
        }
        // Blocking commands inside MULTI behave as if the timeout expired at once.
        if let Outcome::Block(..) = call(srv, client, spec, args, out, Mode::InExec) {
            Reply::new(out, client.proto).null_array();
        }
    }
    client.in_exec = false;
    srv.feed.end_atomic();
    after_command(srv, client);
    Outcome::Continue
}

/// Runs one command of a script (Redis's `scriptCall`): the checks Redis makes for a
/// script's command, in its order and with its texts, then the command in the script's
/// database and protocol. Handed to handlers as [`cmd::ScriptCall`].
fn script_call(
    srv: &mut Server,
    client: &mut Client,
    run: &mut ScriptRun,
    args: Args<'_>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let spec = cmd::names::lookup(&srv.commands, args.get(0))
        .filter(|s| cmd::subcommand_error(s, args).is_none() || !s.arity_ok(args.len()));
    let Some(spec) = spec else {
        return Err("Unknown Redis command called from script".into());
    };
    if !spec.arity_ok(args.len()) {
        return Err("Wrong number of args calling Redis command from script".into());
    }
    if spec.is(flags::NOSCRIPT) {
        return Err("This Redis command is not allowed from script".into());
    }
    if srv.stale() && !spec.is(flags::STALE) {
        return Err("Can not execute the command on a stale replica".into());
    }
    if let Some(e) = access::refusal(srv, client, spec, args, Place::Script) {
        return Err(e);
    }
    if run.read_only && spec.is(flags::WRITE | flags::MAY_REPLICATE) {
        return Err("Write commands are not allowed from read-only scripts.".into());
    }
    if spec.is(flags::WRITE) && !run.wrote {
        if srv.read_only_replica() && !client.is_master {
            return Err(format!("-{READONLY_REPLICA}"));
        }
        if writes_denied_by_disk_error(srv) {
            return Err(format!("-{MISCONF}"));
        }
        if srv.lacks_good_replicas() {
            return Err(format!("-{NOREPLICAS}"));
        }
    }
    if !run.allow_oom
        && !run.wrote
        && run.oom_at_start
        && !client.is_master
        && spec.is(flags::DENYOOM)
    {
        return Err(format!("-{}", CmdError::Oom.text()));
    }
    if spec.is(flags::WRITE) {
        run.wrote = true;
    }
    let (db, proto) = (client.db, client.proto);
    client.db = run.db;
    client.proto = if run.resp3 {
        Protocol::Resp3
    } else {
        Protocol::Resp2
    };
    let mode = Mode::Script {
        replicate: run.replicate,
    };
    if let Outcome::Block(..) = call(srv, client, spec, args, out, mode) {
        Reply::new(out, client.proto).null_array();
    }
    run.db = client.db;
    client.db = db;
    client.proto = proto;
    Ok(())
}

/// Puts a client's own notifications before the reply that starts at `mark`.
fn place_before(out: &mut Vec<u8>, mark: usize, bytes: Vec<u8>) {
    if !bytes.is_empty() {
        out.splice(mark..mark, bytes);
    }
}

fn after_command(srv: &mut Server, client: &mut Client) {
    client.woff = srv.feed.offset;
    {
        let mut info = client.shared.info.borrow_mut();
        info.db = client.db;
        info.multi = client.multi.as_ref().map_or(-1, |q| q.len() as i64);
    }
    client.sync_flags(false);
}

fn reply_error(srv: &mut Server, client: &Client, out: &mut Vec<u8>, msg: &str) {
    srv.stats.total_error_replies += 1;
    let code = msg.split(' ').next().unwrap_or("ERR").to_string();
    *srv.stats.error_counts.entry(code).or_default() += 1;
    Reply::new(out, client.proto).error(msg);
}

/// Redis's text for an unknown command, quoting up to the first arguments.
pub fn unknown_command<'a>(mut args: impl Iterator<Item = &'a [u8]>) -> String {
    let first = args.next().unwrap_or_default();
    let name = String::from_utf8_lossy(&first[..first.len().min(128)]).into_owned();
    let mut msg = format!("ERR unknown command '{name}', with args beginning with: ");
    for a in args {
        if msg.len() >= 128 + 60 {
            break;
        }
        msg.push('\'');
        msg.push_str(&String::from_utf8_lossy(&a[..a.len().min(128)]));
        msg.push_str("' ");
    }
    msg
}
