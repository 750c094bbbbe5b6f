//! The set as this node sees it, in the shape Sentinel reports a monitored master: the
//! master's address and its replicas. A master knows both itself; a replica knows its
//! master's address and asks the master (INFO) for the rest.

use std::net::IpAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::state::Server;
use crate::state::replication::replicas::ReplicaState;
use crate::state::sentinel::MasterAddr;

/// How long a replica waits for its master's INFO before reporting the master down.
const ASK_MASTER_TIMEOUT: Duration = Duration::from_secs(1);

/// The monitored master, as `SENTINEL MASTER` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Master {
    pub host: String,
    pub port: u16,
    pub runid: String,
    /// Unreachable from this node: flagged `s_down`, so clients ask another endpoint.
    pub down: bool,
    pub replicas: Vec<Replica>,
}

/// A replica of the master, as `SENTINEL REPLICAS` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub host: String,
    pub port: u16,
    /// Online: past its full sync and following the stream. Others are flagged `s_down`
    /// so that clients send reads only to replicas that answer them from a whole dataset.
    pub online: bool,
    pub offset: u64,
}

/// This node's own address for clients: `replica-announce-ip`/`-port` when set (the
/// operator sets the pod's DNS name), else the address the client reached it on.
pub fn own_address(srv: &Server, local: IpAddr) -> (String, u16) {
    let host = if srv.config.replica_announce_ip.is_empty() {
        local.to_string()
    } else {
        srv.config.replica_announce_ip.clone()
    };
    let port = match srv.config.replica_announce_port {
        0 => srv.config.port,
        p => u16::try_from(p).unwrap_or(srv.config.port),
    };
    (host, port)
}

/// Renders a master address for a client that reached this node on `local`.
pub fn render(srv: &Server, addr: &MasterAddr, local: IpAddr) -> (String, u16) {
    match addr {
        MasterAddr::Own => own_address(srv, local),
        MasterAddr::Remote(h, p) => (h.clone(), *p),
    }
}

/// What a master node knows by itself.
pub fn local_master(srv: &Server, local: IpAddr) -> Master {
    let (host, port) = own_address(srv, local);
    Master {
        host,
        port,
        runid: srv.run_id.clone(),
        down: false,
        replicas: srv
            .repl
            .replicas
            .iter()
            .map(|l| Replica {
                host: l.ip.clone(),
                port: l.port,
                online: l.state.get() == ReplicaState::Online,
                offset: l.ack_off.get(),
            })
            .collect(),
    }
}

/// What a replica learns from its master's INFO: the run id and the replicas it lists.
/// A master that cannot be asked is reported down, at the address the replica follows.
pub async fn ask_master(host: String, port: u16, auth: Option<(Option<String>, String)>) -> Master {
    match tokio::time::timeout(ASK_MASTER_TIMEOUT, fetch_info(&host, port, auth)).await {
        Ok(Ok(info)) => {
            let mut m = parse_info(&info);
            m.host = host;
            m.port = port;
            m
        }
        Ok(Err(_)) | Err(_) => Master {
            host,
            port,
            runid: String::new(),
            down: true,
            replicas: Vec::new(),
        },
    }
}

/// The master's `INFO server replication` text, after AUTH with `masteruser`/`masterauth`.
async fn fetch_info(
    host: &str,
    port: u16,
    auth: Option<(Option<String>, String)>,
) -> std::io::Result<String> {
    let sock = TcpStream::connect((host, port)).await?;
    let mut sock = BufReader::new(sock);
    if let Some((user, pass)) = auth {
        let mut args = vec!["AUTH".to_string()];
        args.extend(user);
        args.push(pass);
        sock.get_mut().write_all(&request(&args)).await?;
        let line = read_line(&mut sock).await?;
        if !line.starts_with('+') {
            return Err(std::io::Error::other(line));
        }
    }
    let args = ["INFO".to_string(), "server".into(), "replication".into()];
    sock.get_mut().write_all(&request(&args)).await?;
    let head = read_line(&mut sock).await?;
    let len: usize = head
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| std::io::Error::other(head.clone()))?;
    let mut body = vec![0; len + 2];
    sock.read_exact(&mut body).await?;
    body.truncate(len);
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn request(args: &[String]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

async fn read_line(sock: &mut BufReader<TcpStream>) -> std::io::Result<String> {
    let mut line = String::new();
    if sock.read_line(&mut line).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line.trim_end().to_string())
}

/// The run id and the `slaveN:ip=...,port=...,state=...,offset=...` lines of a master's INFO.
fn parse_info(info: &str) -> Master {
    let mut m = Master {
        host: String::new(),
        port: 0,
        runid: String::new(),
        down: false,
        replicas: Vec::new(),
    };
    for line in info.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name == "run_id" {
            m.runid = value.to_string();
        } else if let Some(n) = name.strip_prefix("slave")
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
        {
            let field = |f: &str| {
                value
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(f)?.strip_prefix('='))
                    .unwrap_or_default()
            };
            m.replicas.push(Replica {
                host: field("ip").to_string(),
                port: field("port").parse().unwrap_or(0),
                online: field("state") == "online",
                offset: field("offset").parse().unwrap_or(0),
            });
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masters_info_gives_its_run_id_and_replicas() {
        let info = "# Server\r\nredis_version:7.0.15\r\nrun_id:abc123\r\n\r\n# Replication\r\n\
                    role:master\r\nconnected_slaves:2\r\n\
                    slave0:ip=10.0.0.2,port=6379,state=online,offset=1234,lag=0\r\n\
                    slave1:ip=node-2.db,port=6380,state=wait_bgsave,offset=0,lag=1\r\n\
                    master_failover_state:no-failover\r\nslave_read_repl_offset:7\r\n";
        let m = parse_info(info);
        assert_eq!(m.runid, "abc123");
        assert_eq!(
            m.replicas,
            vec![
                Replica {
                    host: "10.0.0.2".into(),
                    port: 6379,
                    online: true,
                    offset: 1234
                },
                Replica {
                    host: "node-2.db".into(),
                    port: 6380,
                    online: false,
                    offset: 0
                },
            ]
        );
    }
}
