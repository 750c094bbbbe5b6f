//! The AOF loader on arbitrary bytes: with a first byte of 0 the rest is a manifest (parsed
//! as Redis's loader parses it; what parses must format and parse back to itself, within
//! Redis's line limit), else an
//! incremental file read by the loader's command reader, each command replayed through the
//! executor by a client of the load's kind, as the start-up load does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_server::aof::load::{CommandReader, Step};
use tandem_server::aof::manifest::Manifest;
use tandem_server::client::Client;
use tandem_server::config::Config;
use tandem_server::protocol::Args;
use tandem_server::state::Server;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode == 0 {
        if let Ok(m) = Manifest::parse(rest) {
            // Redis's reader takes lines of at most 1,024 bytes, its writer does not check:
            // a name whose quoted form is longer formats into a manifest neither reads back.
            let text = m.format();
            if text.lines().all(|l| l.len() < 1024) {
                let again = Manifest::parse(text.as_bytes());
                assert_eq!(again.as_ref().ok(), Some(&m), "a parsed manifest formats back");
            }
        }
        return;
    }
    let mut srv = Server::new(Config::default());
    let mut client = Client::new(srv.next_client_id(), None, None, false);
    client.is_master = true;
    client.authenticated = true;
    let mut reader = CommandReader::new(rest, 0);
    let mut out = Vec::new();
    while let Ok(Step::Command(argv, _)) = reader.next_step() {
        let mut buf = Vec::new();
        let mut ranges = Vec::new();
        for a in &argv {
            ranges.push((buf.len(), buf.len() + a.len()));
            buf.extend_from_slice(a);
        }
        let _ = tandem_server::exec::execute(&mut srv, &mut client, Args::new(&buf, &ranges), &mut out);
        out.clear();
    }
});
