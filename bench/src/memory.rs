//! `tandem-bench memory`: bytes per key for three shapes, each loaded into a fresh server:
//! `string10` (small string keys with 10-byte values), `ycsb` (YCSB's Redis binding: one
//! hash per record, 10 fields of 100 bytes) and `stream` (one stream of entries with three
//! small fields, as event logs hold them; "keys" are its entries).

use crate::dataset;
use crate::report;
use crate::servers::{self, Kind, Server};
use anyhow::Context as _;
use rand::{SeedableRng, rngs::StdRng};
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    common: crate::Common,
    /// Shapes to load.
    #[arg(long, value_delimiter = ',', default_value = "string10,ycsb,stream")]
    shapes: Vec<Shape>,
    /// Keys of the string10 shape.
    #[arg(long, default_value_t = 1_000_000)]
    string_keys: u64,
    /// Records of the ycsb shape.
    #[arg(long, default_value_t = 200_000)]
    ycsb_records: u64,
    /// Entries of the stream shape.
    #[arg(long, default_value_t = 1_000_000)]
    stream_entries: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    String10,
    Ycsb,
    Stream,
}

#[derive(Serialize, Debug)]
pub struct Record {
    pub server: Kind,
    pub shape: Shape,
    pub keys: u64,
    pub used_memory_bytes: u64,
    pub rss_bytes: u64,
    pub bytes_per_key: f64,
    pub rss_bytes_per_key: f64,
}

fn load(server: &Server, shape: Shape, n: u64) -> anyhow::Result<()> {
    let mut c = server.connection()?;
    let mut rng = StdRng::seed_from_u64(42);
    let batch = 1000;
    let mut i = 0;
    while i < n {
        let mut p = redis::pipe();
        for k in i..(i + batch).min(n) {
            match shape {
                Shape::String10 => {
                    p.cmd("SET")
                        .arg(format!("key:{k:012}"))
                        .arg(dataset::random_text(&mut rng, 10))
                        .ignore();
                }
                Shape::Ycsb => {
                    p.add_command(dataset::hset(&mut rng, k)).ignore();
                }
                Shape::Stream => {
                    p.cmd("XADD").arg("events").arg("*");
                    for field in ["user", "action", "item"] {
                        p.arg(field).arg(dataset::random_text(&mut rng, 8));
                    }
                    p.ignore();
                }
            }
        }
        p.query::<()>(&mut c)
            .with_context(|| format!("loading {shape:?} into {}", server.kind.name()))?;
        i += batch;
    }
    Ok(())
}

pub fn run(a: &Args) -> anyhow::Result<()> {
    let tandem = servers::tandem_bin(a.common.tandem_bin.as_deref())?;
    let mut records = Vec::new();
    for &shape in &a.shapes {
        let n = match shape {
            Shape::String10 => a.string_keys,
            Shape::Ycsb => a.ycsb_records,
            Shape::Stream => a.stream_entries,
        };
        for &kind in &a.common.servers {
            let bin = match kind {
                Kind::Tandem => tandem.clone(),
                Kind::Redis => a.common.redis_bin.clone(),
            };
            let server = Server::start(kind, &bin, a.common.server_core, &[])?;
            let used_before = server.info_u64("used_memory")?;
            let rss_before = server.rss_bytes()?;
            eprintln!("{}: loading {n} {shape:?} keys", kind.name());
            load(&server, shape, n)?;
            let used = server.info_u64("used_memory")?;
            let rss = server.rss_bytes()?;
            records.push(Record {
                server: kind,
                shape,
                keys: n,
                used_memory_bytes: used,
                rss_bytes: rss,
                bytes_per_key: used.saturating_sub(used_before) as f64 / n as f64,
                rss_bytes_per_key: rss.saturating_sub(rss_before) as f64 / n as f64,
            });
        }
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let redis = records
                .iter()
                .find(|x| x.server == Kind::Redis && x.shape == r.shape);
            vec![
                format!("{:?}", r.shape).to_lowercase(),
                r.server.name().into(),
                r.keys.to_string(),
                r.used_memory_bytes.to_string(),
                r.rss_bytes.to_string(),
                format!("{:.1}", r.bytes_per_key),
                redis.map_or("-".into(), |x| {
                    format!("{:.2}x", r.bytes_per_key / x.bytes_per_key)
                }),
            ]
        })
        .collect();
    report::table(
        &[
            "shape",
            "server",
            "keys",
            "used_memory",
            "rss",
            "bytes/key",
            "vs redis",
        ],
        &rows,
    );
    report::write_json(a.common.json.as_deref(), &records)
}
