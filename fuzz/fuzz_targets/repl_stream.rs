//! What a replica reads from its master after sending PSYNC, on arbitrary bytes: the PSYNC
//! reply line, the `$<len>` / `$EOF:<mark>` preamble (with keepalive newlines), the RDB
//! payload delivered in reads of a size the first byte chooses, the RDB load, then the
//! command stream through the request parser. Mirrors `replica.rs` without the socket.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_server::config::Config;
use tandem_server::rdb::convert::LoadLimits;
use tandem_server::protocol::{Parser, ProtoLimits};
use tandem_server::replication::framing::{self, Payload, PsyncReply};
use tandem_server::replication::loader::load_rdb;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    let read = usize::from(ctl) * 16 + 1;
    let mut buf = input.to_vec();
    let Ok(Some(reply)) = framing::take_line(&mut buf) else {
        return;
    };
    match framing::parse_psync_reply(&reply) {
        PsyncReply::FullResync { .. } => {
            let framing = loop {
                match framing::take_line(&mut buf) {
                    Ok(Some(line)) => match framing::parse_preamble(&line) {
                        Ok(Some(f)) => break f,
                        Ok(None) => {}
                        Err(_) => return,
                    },
                    Ok(None) | Err(_) => return,
                }
            };
            let mut payload = Payload::new(framing);
            let mut rdb = Vec::new();
            let mut at = 0;
            while !payload.is_complete() && at < buf.len() {
                let n = read.min(buf.len() - at);
                let took = payload.feed(&buf[at..at + n], &mut rdb);
                assert!(took <= n);
                assert!(
                    took == n || payload.is_complete(),
                    "bytes left over only after the payload"
                );
                at += took;
            }
            if !payload.is_complete() {
                return;
            }
            buf.drain(..at);
            let limits = LoadLimits::from_config(&Config::default());
            if load_rdb(&rdb[..], 16, limits).is_err() {
                return;
            }
        }
        PsyncReply::Continue(_) => {}
        PsyncReply::TryLater(_) | PsyncReply::Unexpected(_) => return,
    }
    let mut parser = Parser::new();
    let limits = ProtoLimits::default();
    while let Ok(Some(args)) = parser.next(&buf, limits) {
        std::hint::black_box(args.len());
    }
});
