//! A Sentinel-compatible discovery endpoint on `sentinel-port`: the commands Sentinel-aware
//! clients (redis-py's `Sentinel`, ioredis and Jedis in sentinel mode, go-redis's
//! FailoverClient) use to find the master and the replicas, with Redis Sentinel 7.0's
//! replies, and `+switch-master` published when this node's view of the master changes.
//!
//! There are no Sentinel processes: the tandem operator decides failovers and switchovers,
//! and each node answers from what it was told (REPLICAOF). Every node serves the endpoint,
//! so a Service over all pods of a set is the "Sentinel" clients are given, and whichever
//! pod answers names the master the operator chose. A replica asks its master for the
//! replica list; a replica that cannot reach its master reports it `s_down`, which makes
//! clients try another endpoint.
//!
//! The endpoint speaks RESP2, needs no AUTH (it reveals addresses, as Sentinel without
//! `requirepass` does) and refuses what would change the topology (SENTINEL FAILOVER,
//! MONITOR, SET ...): the operator owns that.

mod topology;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tracing::{Instrument, debug, info};

use crate::protocol::{Parser, ProtoLimits, Protocol, Reply};
use crate::state::Shared;
use crate::state::sentinel::SwitchMaster;
pub use topology::{Master, Replica};

/// Redis Sentinel's defaults for the fields clients read but tandem has no use for.
const DOWN_AFTER_MS: u64 = 30_000;
const FAILOVER_TIMEOUT_MS: u64 = 180_000;

/// Accepts Sentinel connections on `listeners` for the life of the server.
pub fn serve(state: &Shared, listeners: Vec<TcpListener>) {
    for listener in listeners {
        let st = state.clone();
        tokio::task::spawn_local(async move {
            loop {
                match listener.accept().await {
                    Ok((sock, peer)) => {
                        let span = tracing::debug_span!("sentinel-client", addr = %peer);
                        tokio::task::spawn_local(run(st.clone(), sock).instrument(span));
                    }
                    Err(e) => {
                        debug!(error = %e, "sentinel accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                }
            }
        });
    }
    let port = state.borrow().config.sentinel_port;
    info!("Sentinel endpoint ready to accept connections tcp (port {port})");
}

/// Ids of the endpoint's connections (HELLO's `id`).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One client of the endpoint.
struct Client {
    id: u64,
    /// The address the client reached this node on: this node's address for it.
    local: IpAddr,
    proto: Protocol,
    channels: BTreeSet<Vec<u8>>,
    patterns: BTreeSet<Vec<u8>>,
}

impl Client {
    fn subscriptions(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }
}

async fn run(state: Shared, mut sock: TcpStream) {
    let Ok(local) = sock.local_addr().map(|a| a.ip()) else {
        return;
    };
    let mut events = state.borrow().sentinel_events.subscribe();
    let mut client = Client {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        local,
        proto: Protocol::Resp2,
        channels: BTreeSet::new(),
        patterns: BTreeSet::new(),
    };
    let mut parser = Parser::new();
    let mut input: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let mut requests: Vec<Vec<Vec<u8>>> = Vec::new();
        let mut refused = None;
        loop {
            match parser.next(&input, ProtoLimits::default()) {
                Ok(Some(args)) => requests.push(args.iter().map(<[u8]>::to_vec).collect()),
                Ok(None) => break,
                Err(e) => {
                    refused = Some(e.to_string());
                    break;
                }
            }
        }
        let consumed = parser.consumed();
        input.drain(..consumed);
        parser.compact(consumed);
        let mut quit = false;
        for args in requests {
            quit = execute(&state, &args, &mut client, &mut out).await;
            if quit {
                break;
            }
        }
        if let Some(e) = &refused {
            Reply::new(&mut out, client.proto).error(&format!("ERR {e}"));
        }
        if !out.is_empty() && sock.write_all(&std::mem::take(&mut out)).await.is_err() {
            return;
        }
        if quit || refused.is_some() {
            return;
        }
        tokio::select! {
            n = sock.read(&mut chunk) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => input.extend_from_slice(&chunk[..n]),
            },
            ev = events.recv() => match ev {
                Ok(ev) => publish(&state.borrow(), &ev, &client, &mut out),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

/// Writes `+switch-master <name> <old-ip> <old-port> <new-ip> <new-port>` to a subscriber.
fn publish(srv: &crate::state::Server, ev: &SwitchMaster, client: &Client, out: &mut Vec<u8>) {
    let channel: &[u8] = b"+switch-master";
    let (old_host, old_port) = topology::render(srv, &ev.old, client.local);
    let (new_host, new_port) = topology::render(srv, &ev.new, client.local);
    let message = format!(
        "{} {old_host} {old_port} {new_host} {new_port}",
        srv.config.sentinel_master_name
    );
    let mut r = Reply::new(out, client.proto);
    if client.channels.contains(channel) {
        r.push(3);
        r.bulk(b"message");
        r.bulk(channel);
        r.bulk(message.as_bytes());
    }
    for p in client
        .patterns
        .iter()
        .filter(|p| crate::glob::matches(p, channel, false))
    {
        r.push(4);
        r.bulk(b"pmessage");
        r.bulk(p);
        r.bulk(channel);
        r.bulk(message.as_bytes());
    }
}

/// Runs one command; returns whether the connection ends (QUIT).
async fn execute(state: &Shared, args: &[Vec<u8>], client: &mut Client, out: &mut Vec<u8>) -> bool {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let local = client.local;
    let mut r = Reply::new(out, client.proto);
    let subscribed = client.subscriptions() > 0 && client.proto == Protocol::Resp2;
    if subscribed
        && matches!(
            name.as_str(),
            "role" | "info" | "auth" | "client" | "sentinel" | "hello"
        )
    {
        r.error(&format!(
            "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
        ));
        return false;
    }
    match name.as_str() {
        "ping" if args.len() <= 2 => {
            if subscribed {
                r.array(2);
                r.bulk(b"pong");
                r.bulk(args.get(1).map_or(&b""[..], |a| a));
            } else if let Some(a) = args.get(1) {
                r.bulk(a);
            } else {
                r.simple("PONG");
            }
        }
        "quit" => {
            r.ok();
            return true;
        }
        "subscribe" | "psubscribe" if args.len() >= 2 => {
            let pattern = name == "psubscribe";
            for c in &args[1..] {
                if pattern {
                    client.patterns.insert(c.clone());
                } else {
                    client.channels.insert(c.clone());
                }
                r.push(3);
                r.bulk(name.as_bytes());
                r.bulk(c);
                r.int(client.subscriptions() as i64);
            }
        }
        "unsubscribe" | "punsubscribe" => {
            let pattern = name == "punsubscribe";
            let set = if pattern {
                &client.patterns
            } else {
                &client.channels
            };
            let targets: Vec<Vec<u8>> = if args.len() > 1 {
                args[1..].to_vec()
            } else {
                set.iter().cloned().collect()
            };
            if targets.is_empty() {
                r.push(3);
                r.bulk(name.as_bytes());
                r.null();
                r.int(client.subscriptions() as i64);
            }
            for c in &targets {
                if pattern {
                    client.patterns.remove(c);
                } else {
                    client.channels.remove(c);
                }
                r.push(3);
                r.bulk(name.as_bytes());
                r.bulk(c);
                r.int(client.subscriptions() as i64);
            }
        }
        "role" if args.len() == 1 => {
            let name = state.borrow().config.sentinel_master_name.clone();
            r.array(2);
            r.bulk(b"sentinel");
            r.array(1);
            r.bulk(name.as_bytes());
        }
        "info" => {
            let text = info(state, args.get(1).map(|s| s.as_slice()), local).await;
            Reply::new(out, client.proto).verbatim(text.as_bytes());
        }
        // The default user needs no password: AUTH default <anything> is accepted as Redis
        // accepts it for a `nopass` user; the one-argument form is Redis's error.
        "auth" if args.len() == 2 => r.error(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        ),
        "auth" if args.len() == 3 => r.ok(),
        "hello" => hello(args, client, out),
        "client" if args.len() >= 2 => {
            // Clients name their connections and announce their library; nothing to keep.
            r.ok();
        }
        "sentinel" if args.len() >= 2 => sentinel(state, &args[1..], client, out).await,
        "ping" | "subscribe" | "psubscribe" | "role" | "auth" | "client" | "sentinel" => {
            r.error(&format!(
                "ERR wrong number of arguments for '{name}' command"
            ));
        }
        _ => r.error(&crate::exec::unknown_command(args.iter().map(Vec::as_slice))),
    }
    false
}

/// The master as this node sees it: itself, or its master asked over the network.
async fn view(state: &Shared, local: IpAddr) -> Master {
    let (ask, auth) = {
        let srv = state.borrow();
        match &srv.config.replicaof {
            None => return topology::local_master(&srv, local),
            Some((h, p)) => (
                (h.clone(), *p),
                srv.config
                    .masterauth
                    .clone()
                    .map(|pass| (srv.config.masteruser.clone(), pass)),
            ),
        }
    };
    topology::ask_master(ask.0, ask.1, auth).await
}

/// The SENTINEL subcommands.
async fn sentinel(state: &Shared, args: &[Vec<u8>], client: &Client, out: &mut Vec<u8>) {
    let (local, proto) = (client.local, client.proto);
    let sub = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let arity_ok = match sub.as_str() {
        "masters" | "myid" | "help" => args.len() == 1,
        "master" | "replicas" | "slaves" | "sentinels" | "get-master-addr-by-name" | "ckquorum" => {
            args.len() == 2
        }
        _ => true,
    };
    let mut r = Reply::new(out, proto);
    if !arity_ok {
        r.error(&format!(
            "ERR wrong number of arguments for 'sentinel|{sub}' command"
        ));
        return;
    }
    let (name, myid) = {
        let srv = state.borrow();
        (srv.config.sentinel_master_name.clone(), srv.run_id.clone())
    };
    let named = |a: &Vec<u8>| a.as_slice() == name.as_bytes();
    let no_such = "ERR No such master with that name";
    match sub.as_str() {
        "myid" => r.bulk(myid.as_bytes()),
        "help" => {
            let lines = [
                "SENTINEL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CKQUORUM <master-name>",
                "    Check if the current Sentinel configuration is able to reach the quorum",
                "    needed to failover a master and the majority needed to authorize the",
                "    failover.",
                "GET-MASTER-ADDR-BY-NAME <master-name>",
                "    Return the ip and port number of the master with that name.",
                "MASTER <master-name>",
                "    Show the state and info of the specified master.",
                "MASTERS",
                "    Show a list of monitored masters and their state.",
                "MYID",
                "    Return the ID of the Sentinel instance.",
                "REPLICAS <master-name>",
                "    Show a list of replicas for this master and their state.",
                "SENTINELS <master-name>",
                "    Show a list of Sentinel instances for this master and their state.",
                "HELP",
                "    Print this help.",
            ];
            r.array(lines.len());
            for l in lines {
                r.simple(l);
            }
        }
        "get-master-addr-by-name" => {
            if !named(&args[1]) {
                r.null_array();
                return;
            }
            let srv = state.borrow();
            let addr = crate::replication::role::master_addr(&srv);
            let (host, port) = topology::render(&srv, &addr, local);
            r.array(2);
            r.bulk(host.as_bytes());
            r.bulk(port.to_string().as_bytes());
        }
        "masters" => {
            let m = view(state, local).await;
            let mut r = Reply::new(out, proto);
            r.array(1);
            master_fields(&mut r, &name, &m, state);
        }
        "master" | "replicas" | "slaves" | "sentinels" | "ckquorum" if !named(&args[1]) => {
            r.error(no_such);
        }
        "master" => {
            let m = view(state, local).await;
            master_fields(&mut Reply::new(out, proto), &name, &m, state);
        }
        "replicas" | "slaves" => {
            let m = view(state, local).await;
            let mut r = Reply::new(out, proto);
            r.array(m.replicas.len());
            for rep in &m.replicas {
                replica_fields(&mut r, rep, &m);
            }
        }
        "sentinels" => r.array(0),
        "ckquorum" => {
            r.simple("OK 1 usable Sentinels. Quorum and failover authorization can be reached")
        }
        "failover"
        | "monitor"
        | "remove"
        | "set"
        | "reset"
        | "flushconfig"
        | "config"
        | "simulate-failure"
        | "debug"
        | "info-cache"
        | "pending-scripts"
        | "is-master-down-by-addr" => r.error(&format!(
            "ERR SENTINEL {} is not available: the tandem operator chooses the master of this set",
            sub.to_ascii_uppercase()
        )),
        _ => r.error(&format!(
            "ERR unknown subcommand '{}'. Try SENTINEL HELP.",
            String::from_utf8_lossy(&args[0])
        )),
    }
}

/// HELLO: RESP2 or RESP3 for the rest of the connection.
fn hello(args: &[Vec<u8>], client: &mut Client, out: &mut Vec<u8>) {
    if let Some(v) = args.get(1) {
        match v.as_slice() {
            b"2" => client.proto = Protocol::Resp2,
            b"3" => client.proto = Protocol::Resp3,
            _ => {
                Reply::new(out, client.proto).error("NOPROTO unsupported protocol version");
                return;
            }
        }
    }
    let mut r = Reply::new(out, client.proto);
    r.map(6);
    r.bulk(b"server");
    r.bulk(b"redis");
    r.bulk(b"version");
    r.bulk(crate::REDIS_VERSION.as_bytes());
    r.bulk(b"proto");
    r.int(if client.proto == Protocol::Resp3 {
        3
    } else {
        2
    });
    r.bulk(b"id");
    r.int(client.id as i64);
    r.bulk(b"mode");
    r.bulk(b"sentinel");
    r.bulk(b"modules");
    r.array(0);
}

/// A flat array of field names and values.
fn fields(r: &mut Reply<'_>, pairs: &[(&str, String)]) {
    r.map(pairs.len());
    for (k, v) in pairs {
        r.bulk(k.as_bytes());
        r.bulk(v.as_bytes());
    }
}

/// The fields Redis Sentinel 7.0 starts every monitored instance's entry with, masters and
/// replicas alike, up to `s-down-time` (present only while the instance is down).
fn instance_fields(
    name: String,
    ip: &str,
    port: u16,
    runid: &str,
    flags: &str,
    down: bool,
) -> Vec<(&'static str, String)> {
    let mut pairs = vec![
        ("name", name),
        ("ip", ip.to_owned()),
        ("port", port.to_string()),
        ("runid", runid.to_owned()),
        ("flags", flags.to_owned()),
        ("link-pending-commands", "0".into()),
        ("link-refcount", "1".into()),
        ("last-ping-sent", "0".into()),
        ("last-ok-ping-reply", "0".into()),
        ("last-ping-reply", "0".into()),
    ];
    if down {
        pairs.push(("s-down-time", "0".into()));
    }
    pairs
}

/// SENTINEL MASTER's fields, in Redis Sentinel 7.0's order.
fn master_fields(r: &mut Reply<'_>, name: &str, m: &Master, state: &Shared) {
    let uptime_ms = state.borrow().started.elapsed().as_millis().to_string();
    let flags = if m.down { "master,s_down" } else { "master" };
    let mut pairs = instance_fields(name.to_string(), &m.host, m.port, &m.runid, flags, m.down);
    pairs.extend([
        ("down-after-milliseconds", DOWN_AFTER_MS.to_string()),
        ("info-refresh", "0".into()),
        ("role-reported", "master".into()),
        ("role-reported-time", uptime_ms),
        ("config-epoch", "0".into()),
        ("num-slaves", m.replicas.len().to_string()),
        ("num-other-sentinels", "0".into()),
        ("quorum", "1".into()),
        ("failover-timeout", FAILOVER_TIMEOUT_MS.to_string()),
        ("parallel-syncs", "1".into()),
    ]);
    fields(r, &pairs);
}

/// SENTINEL REPLICAS' fields for one replica, in Redis Sentinel 7.0's order.
fn replica_fields(r: &mut Reply<'_>, rep: &Replica, m: &Master) {
    let flags = if rep.online { "slave" } else { "slave,s_down" };
    let mut pairs = instance_fields(
        format!("{}:{}", rep.host, rep.port),
        &rep.host,
        rep.port,
        "",
        flags,
        !rep.online,
    );
    pairs.extend([
        ("down-after-milliseconds", DOWN_AFTER_MS.to_string()),
        ("info-refresh", "0".into()),
        ("role-reported", "slave".into()),
        ("role-reported-time", "0".into()),
        ("master-link-down-time", "0".into()),
        (
            "master-link-status",
            if rep.online { "ok" } else { "err" }.into(),
        ),
        ("master-host", m.host.clone()),
        ("master-port", m.port.to_string()),
        ("slave-priority", "100".into()),
        ("slave-repl-offset", rep.offset.to_string()),
        ("replica-announced", "1".into()),
    ]);
    fields(r, &pairs);
}

/// INFO on the endpoint: the server and sentinel sections, as Redis Sentinel prints them.
async fn info(state: &Shared, section: Option<&[u8]>, local: IpAddr) -> String {
    let section = section.map(|s| String::from_utf8_lossy(s).to_ascii_lowercase());
    let wants = |name: &str| {
        section
            .as_deref()
            .is_none_or(|s| s == name || s == "all" || s == "default" || s == "everything")
    };
    let mut text = String::new();
    if wants("server") {
        let srv = state.borrow();
        text.push_str(&format!(
            "# Server\r\nredis_version:{}\r\nredis_mode:sentinel\r\nrun_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\n",
            crate::REDIS_VERSION,
            srv.run_id,
            srv.config.sentinel_port,
            srv.started.elapsed().as_secs()
        ));
    }
    if wants("sentinel") {
        let m = view(state, local).await;
        let name = state.borrow().config.sentinel_master_name.clone();
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        text.push_str(&format!(
            "# Sentinel\r\nsentinel_masters:1\r\nsentinel_tilt:0\r\nsentinel_tilt_since_seconds:-1\r\nsentinel_running_scripts:0\r\nsentinel_scripts_queue_length:0\r\nsentinel_simulate_failure_flags:0\r\nmaster0:name={name},status={},address={}:{},slaves={},sentinels=1\r\n",
            if m.down { "sdown" } else { "ok" },
            m.host,
            m.port,
            m.replicas.len()
        ));
    }
    text
}

/// Binds the Sentinel endpoint's listeners when `sentinel-port` is set.
///
/// # Errors
/// A mandatory address cannot be bound.
pub async fn bind(config: &crate::config::Config) -> std::io::Result<Vec<TcpListener>> {
    if config.sentinel_port == 0 {
        return Ok(Vec::new());
    }
    crate::net::bind(&config.bind, config.sentinel_port).await
}
