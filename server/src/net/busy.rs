//! Other clients while a script runs past `busy-reply-threshold`.
//!
//! The script holds the server (its state is borrowed and its thread is in Lua), so the
//! connection tasks cannot run. As Redis's `processEventsWhileBlocked` does, the script's
//! instruction hook calls [`serve`] now and then, which talks to the sockets itself: every
//! command gets `-BUSY`, except SCRIPT KILL / FUNCTION KILL, SHUTDOWN NOSAVE and QUIT (and
//! AUTH from a client not yet authenticated). Idle connections are answered on their own
//! sockets; new connections are accepted and become ordinary connections once the script
//! ends. A connection in the middle of something (a partial command buffered, output
//! unsent, blocked) is left alone and waits for the script like in a pipeline.

use crate::client::ClientShared;
use crate::protocol::{Args, Parser, ProtoLimits};
use crate::socket::{Socket, read_available, write_available};
use crate::state::scripting::ScriptRun;
use crate::state::{Arrival, Server};
use rustix::net::SocketFlags;
use std::os::fd::AsFd;
use tracing::warn;

/// Serves the other clients once. Returns true when a KILL for this script was accepted.
pub fn serve(srv: &mut Server, run: &mut ScriptRun, name: &str) -> bool {
    if !run.timed_out {
        run.timed_out = true;
        let elapsed = crate::clock::now_ms().saturating_sub(run.started_ms);
        let kill = if run.eval {
            "SCRIPT KILL"
        } else {
            "FUNCTION KILL"
        };
        warn!(
            "Slow script detected: still in execution after {elapsed} milliseconds. You can try killing the script using the {kill} command. Script name is: {name}."
        );
    }
    accept_arrivals(srv);
    let mut verdict = Verdict::default();
    let clients: Vec<std::rc::Rc<ClientShared>> = srv
        .clients
        .values()
        .filter(|c| c.idle.get() && c.socket.borrow().is_some())
        .cloned()
        .collect();
    for shared in clients {
        let Some(sock) = shared.socket.borrow().clone() else {
            continue;
        };
        let mut input = std::mem::take(&mut *shared.busy_input.borrow_mut());
        let closed = sock.read_now(&mut input);
        // An idle client is authenticated as its user. An AUTH now is checked and answered,
        // and the rest of this input is checked as the user it names; the client itself
        // keeps its user.
        let mut user = Some(shared.info.borrow().user.clone());
        let mut out = Vec::new();
        let quit = answer(&mut input, &mut out, run, &srv.acl, &mut user, &mut verdict);
        write_or_queue(&sock, &out, &shared);
        if quit || closed {
            shared.killed.set(true);
        }
        let woke = !input.is_empty() || quit || closed;
        *shared.busy_input.borrow_mut() = input;
        if woke {
            shared.notify.notify_one();
        }
    }
    let mut arrivals = std::mem::take(&mut srv.arrivals);
    arrivals.retain_mut(|a| {
        let closed = read_available(&a.sock, &mut a.input);
        let mut out = Vec::new();
        let quit = answer(
            &mut a.input,
            &mut out,
            run,
            &srv.acl,
            &mut a.user,
            &mut verdict,
        );
        // An arrival's socket is fresh: a reply that does not fit is dropped with it.
        let written = write_available(&a.sock, &out);
        !(quit || closed || written < out.len())
    });
    srv.arrivals = arrivals;
    if verdict.shutdown {
        warn!(
            "User requested shutdown with NOSAVE while a script was running: exiting without saving"
        );
        std::process::exit(0);
    }
    if verdict.kill {
        run.killed = true;
    }
    verdict.kill
}

#[derive(Default)]
struct Verdict {
    kill: bool,
    shutdown: bool,
}

/// Accepts whatever waits on the listeners, without waiting.
fn accept_arrivals(srv: &mut Server) {
    for listener in &srv.listeners {
        let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
        while let Ok(fd) = rustix::net::accept_with(listener.as_fd(), flags) {
            let sock = std::net::TcpStream::from(fd);
            let Ok(peer) = sock.peer_addr() else {
                continue;
            };
            let _ = sock.set_nodelay(true);
            srv.arrivals.push(Arrival {
                sock,
                peer,
                input: Vec::new(),
                user: srv.acl.default_needs_no_auth().then(|| b"default".to_vec()),
            });
        }
    }
    if !srv.arrivals.is_empty() {
        srv.arrivals_ready.notify_one();
    }
}

/// Answers every complete command in `input` and removes it. Returns true when the client
/// must be closed (QUIT, protocol error).
fn answer(
    input: &mut Vec<u8>,
    out: &mut Vec<u8>,
    run: &ScriptRun,
    acl: &crate::acl::Users,
    user: &mut Option<Vec<u8>>,
    verdict: &mut Verdict,
) -> bool {
    let mut parser = Parser::new();
    let mut quit = false;
    loop {
        let limits = ProtoLimits {
            auth_required: user.is_none(),
            ..ProtoLimits::default()
        };
        match parser.next(input, limits) {
            Ok(Some(args)) => {
                let reply = reply_to(args, run, acl, user, verdict);
                out.extend_from_slice(reply.as_bytes());
                if args.get(0).eq_ignore_ascii_case(b"quit") {
                    quit = true;
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                out.extend_from_slice(format!("-ERR {e}\r\n").as_bytes());
                quit = true;
                break;
            }
        }
    }
    let consumed = parser.consumed();
    input.drain(..consumed);
    quit
}

const BUSY_EVAL: &str =
    "-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n";
const BUSY_FUNCTION: &str =
    "-BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.\r\n";

/// The reply to one command while the script runs, with Redis 7.0's texts.
fn reply_to(
    args: Args<'_>,
    run: &ScriptRun,
    acl: &crate::acl::Users,
    authenticated: &mut Option<Vec<u8>>,
    verdict: &mut Verdict,
) -> String {
    let is =
        |i: usize, word: &str| args.len() > i && args.get(i).eq_ignore_ascii_case(word.as_bytes());
    if is(0, "quit") {
        return "+OK\r\n".into();
    }
    if is(0, "auth") && (args.len() == 2 || args.len() == 3) {
        let (user, pass) = match args.len() {
            2 => (None, args.get(1)),
            _ => (Some(args.get(1)), args.get(2)),
        };
        if user.is_none() && acl.get(b"default").is_some_and(|u| u.nopass) {
            return "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n".into();
        }
        let name = user.unwrap_or(b"default");
        if acl.authenticate(name, pass) {
            *authenticated = Some(name.to_vec());
            return "+OK\r\n".into();
        }
        return "-WRONGPASS invalid username-password pair or user is disabled.\r\n".into();
    }
    let Some(name) = authenticated.as_deref() else {
        return "-NOAUTH Authentication required.\r\n".into();
    };
    // The ACL is checked before BUSY, as Redis checks it before the busy script.
    if let Some(spec) = crate::cmd::lookup(args.get(0))
        && spec.arity_ok(args.len())
        && crate::cmd::subcommand_error(spec, args).is_none()
        && let Some(req) = crate::acl::request::of(spec, args)
        && let Err(denied) = acl.check(name, &req)
    {
        let full = crate::acl::universe::UNIVERSE.commands[req.id].full;
        return format!("-{}\r\n", crate::access::noperm(denied, full));
    }
    let busy = if run.eval { BUSY_EVAL } else { BUSY_FUNCTION };
    let kill_for_eval = is(0, "script") && is(1, "kill") && args.len() == 2;
    let kill_for_function = is(0, "function") && is(1, "kill") && args.len() == 2;
    if kill_for_eval || kill_for_function {
        if run.from_master {
            return "-UNKILLABLE The busy script was sent by a master instance in the context of replication and cannot be killed.\r\n".into();
        }
        if run.wrote {
            return "-UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.\r\n".into();
        }
        // SCRIPT KILL does not stop a function, nor FUNCTION KILL a script.
        if kill_for_eval != run.eval {
            return busy.into();
        }
        verdict.kill = true;
        return "+OK\r\n".into();
    }
    if is(0, "shutdown") && (1..args.len()).any(|i| is(i, "nosave")) {
        verdict.shutdown = true;
        return "+OK\r\n".into();
    }
    busy.into()
}

/// Writes a reply on the client's socket; what does not fit goes to its pending output, sent
/// by its connection once the script ends.
fn write_or_queue(sock: &Socket, out: &[u8], shared: &ClientShared) {
    if out.is_empty() {
        return;
    }
    let written = sock.write_now(out);
    if written < out.len() {
        shared
            .pending
            .borrow_mut()
            .extend_from_slice(&out[written..]);
        shared.notify.notify_one();
    }
}
