//! The RDB reader and the conversion into keyspace values on arbitrary bytes, through the
//! replica's full-sync loader (every item, every encoding, the duplicate-key check).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_server::config::Config;
use tandem_server::rdb::convert::LoadLimits;
use tandem_server::replication::loader::load_rdb;

fuzz_target!(|data: &[u8]| {
    let limits = LoadLimits::from_config(&Config::default());
    let _ = load_rdb(data, 16, limits);
});
