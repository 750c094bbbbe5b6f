//! MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw | AUTH2 user pw] [KEYS k...]:
//! moves keys to another server (tandem or Redis) as RESTORE commands carrying DUMP payloads,
//! and deletes them here once the target accepted them (unless COPY).
//!
//! As in Redis, the transfer is synchronous: the server waits for the target, up to `timeout`
//! milliseconds per step, and answers nothing else meanwhile. Unlike Redis, the connection to
//! the target is not kept for the next MIGRATE: each call connects (and SELECTs) afresh,
//! which Redis also does whenever its cached connection is older than ten seconds.

use super::{CmdError, CmdResult, Ctx, Spec, eq, flags::*, int_arg, spec};
use crate::notify::class;
use crate::protocol::Args;
use crate::rdb::dump;
use crate::state::replication::feed::encode;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

pub static COMMANDS: &[Spec] = &[spec(
    "migrate",
    -6,
    WRITE | MOVABLEKEYS,
    (3, 3, 1),
    "generic",
    migrate,
)];

struct Options<'a> {
    copy: bool,
    replace: bool,
    auth: Option<(Option<&'a [u8]>, &'a [u8])>,
    /// Where the keys start and how many there are.
    keys: (usize, usize),
}

fn options(args: Args<'_>) -> Result<Options<'_>, CmdError> {
    let mut o = Options {
        copy: false,
        replace: false,
        auth: None,
        keys: (3, 1),
    };
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let a = args.get(j);
        if eq(a, "copy") {
            o.copy = true;
        } else if eq(a, "replace") {
            o.replace = true;
        } else if eq(a, "auth") && more >= 1 {
            o.auth = Some((None, args.get(j + 1)));
            j += 1;
        } else if eq(a, "auth2") && more >= 2 {
            o.auth = Some((Some(args.get(j + 1)), args.get(j + 2)));
            j += 2;
        } else if eq(a, "keys") {
            if !args.get(3).is_empty() {
                return Err(CmdError::msg(
                    "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string",
                ));
            }
            o.keys = (j + 1, args.len() - j - 1);
            break;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    Ok(o)
}

fn migrate(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let o = options(args)?;
    let timeout = int_arg(args.get(5))?;
    let db = int_arg(args.get(4))?;
    let timeout = Duration::from_millis(if timeout <= 0 { 1000 } else { timeout as u64 });
    // The keys that exist (a read lookup each, as Redis's), with their payloads and TTLs.
    let compression = ctx.srv.config.rdbcompression;
    let now = ctx.now_ms;
    let mut found = Vec::new();
    for i in o.keys.0..o.keys.0 + o.keys.1 {
        let key = args.get(i);
        let Some(slot) = ctx.read(key) else {
            continue;
        };
        let e = ctx.db().entry(slot);
        let ttl = match e.expire_at() {
            None => 0,
            Some(at) if at < now => continue,
            Some(at) => (at - now).max(1),
        };
        found.push((key, ttl, dump::encode(&e.value, compression)));
    }
    if found.is_empty() {
        ctx.reply.simple("NOKEY");
        return Ok(());
    }
    let mut batch = Vec::new();
    if let Some((user, pass)) = o.auth {
        let mut a: Vec<&[u8]> = vec![b"AUTH"];
        a.extend(user);
        a.push(pass);
        encode(&mut batch, &a);
    }
    let db_text = db.to_string();
    encode(&mut batch, &[&b"SELECT"[..], db_text.as_bytes()]);
    for (key, ttl, payload) in &found {
        let ttl = ttl.to_string();
        let mut a: Vec<&[u8]> = vec![b"RESTORE", key, ttl.as_bytes(), payload];
        if o.replace {
            a.push(b"REPLACE");
        }
        encode(&mut batch, &a);
    }
    let host = String::from_utf8_lossy(args.get(1)).into_owned();
    let port = String::from_utf8_lossy(args.get(2)).into_owned();
    let replies = exchange(
        &host,
        &port,
        &batch,
        1 + usize::from(o.auth.is_some()),
        found.len(),
        timeout,
    )?;
    // Redis reports the first error, checking AUTH's and SELECT's replies first; keys the
    // target accepted are deleted here (and replicated as one DEL) unless COPY.
    let mut error = replies.setup.iter().find(|l| l.starts_with('-')).cloned();
    let mut moved = Vec::new();
    for ((key, _, _), reply) in found.iter().zip(&replies.restores) {
        if error.is_none() && reply.starts_with('-') {
            error = Some(reply.clone());
        }
        if !reply.starts_with('-') && replies.setup.iter().all(|l| !l.starts_with('-')) && !o.copy {
            moved.push(key.to_vec());
        }
    }
    for key in &moved {
        ctx.delete(key);
        ctx.srv.touch_key(ctx.client.db, key);
        ctx.notify(class::GENERIC, "del", key);
    }
    ctx.dirty(moved.len() as u64);
    ctx.touched = Some(Vec::new());
    if moved.is_empty() {
        ctx.no_propagate();
    } else {
        let mut del = vec![b"DEL".to_vec()];
        del.extend(moved);
        ctx.rewrite(vec![del]);
    }
    if let Some(e) = error {
        return Err(CmdError::msg(format!(
            "ERR Target instance replied with error: {}",
            &e[1..]
        )));
    }
    if replies.restores.len() < found.len() {
        return Err(CmdError::msg(
            "IOERR error or timeout reading to target instance",
        ));
    }
    ctx.reply.ok();
    Ok(())
}

/// What the target answered: the AUTH and SELECT lines, then one line per RESTORE (fewer
/// when the connection failed part-way).
struct Replies {
    setup: Vec<String>,
    restores: Vec<String>,
}

/// Sends the batch and reads `setup + restores` reply lines, each step bounded by
/// `timeout`. Redis's IOERR texts for what fails before any RESTORE reply.
fn exchange(
    host: &str,
    port: &str,
    batch: &[u8],
    setup: usize,
    restores: usize,
    timeout: Duration,
) -> Result<Replies, CmdError> {
    let connect_err = || CmdError::msg("IOERR error or timeout connecting to the client");
    let addr = format!("{host}:{port}")
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(connect_err)?;
    let write_err = || CmdError::msg("IOERR error or timeout writing to target instance");
    // Redis connects without waiting for the handshake's outcome, so a refused connection
    // shows up as the first write failing.
    let sock = TcpStream::connect_timeout(&addr, timeout).map_err(|e| {
        if e.kind() == std::io::ErrorKind::ConnectionRefused {
            write_err()
        } else {
            connect_err()
        }
    })?;
    let _ = sock.set_read_timeout(Some(timeout));
    let _ = sock.set_write_timeout(Some(timeout));
    let _ = sock.set_nodelay(true);
    (&sock).write_all(batch).map_err(|_| write_err())?;
    let read_err = || CmdError::msg("IOERR error or timeout reading to target instance");
    let mut reader = BufReader::new(&sock);
    let mut line = || -> Option<String> {
        let mut l = String::new();
        match reader.read_line(&mut l) {
            Ok(n) if n > 0 => Some(l.trim_end_matches(['\r', '\n']).to_string()),
            _ => None,
        }
    };
    let setup: Vec<String> = (0..setup)
        .map(|_| line())
        .collect::<Option<_>>()
        .ok_or_else(read_err)?;
    let mut got = Vec::new();
    for _ in 0..restores {
        match line() {
            Some(l) => got.push(l),
            None if got.is_empty() => return Err(read_err()),
            None => break,
        }
    }
    Ok(Replies {
        setup,
        restores: got,
    })
}
