//! `tandem-bench report`: rewrites the generated part of docs/benchmarks.md (between
//! `<!-- full-sync:begin -->` and `<!-- full-sync:end -->`) from full-sync JSON files, and
//! renders one chart per file next to the document. Markdown is built by pure functions;
//! this module runs no benchmark.

use crate::full_sync::{Mode, Record};
use crate::servers::Kind;
use anyhow::{Context as _, bail};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub const BEGIN: &str = "<!-- full-sync:begin -->";
pub const END: &str = "<!-- full-sync:end -->";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// full-sync JSON files (`tandem-bench full-sync --json`), one section each.
    #[arg(long, value_delimiter = ',', required = true)]
    full_sync: Vec<PathBuf>,
    /// The document whose generated section is rewritten.
    #[arg(long, default_value = "docs/benchmarks.md")]
    doc: PathBuf,
}

fn gib(b: u64) -> String {
    format!("{:.2}", b as f64 / f64::from(1u32 << 30))
}

/// Median of `f` over the records of one (server, mode).
fn med(rs: &[&Record], f: impl Fn(&Record) -> f64) -> f64 {
    crate::report::median(&rs.iter().map(|r| f(r)).collect::<Vec<_>>())
}

/// The section for one run: a table of medians per (server, mode) and the chart.
pub fn section(records: &[Record], chart: &str) -> String {
    let size = records.first().map_or(0, |r| r.dataset_bytes);
    let rounds = records.iter().map(|r| r.round).max().unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Full sync, {} of YCSB records ({} records, {} round{}{})\n",
        crate::plot::human(size),
        records.first().map_or(0, |r| r.records),
        rounds,
        if rounds == 1 { "" } else { "s, medians" },
        records
            .iter()
            .find_map(|r| r.write_rate)
            .map_or(String::new(), |w| format!(", write load {w} HSET/s"))
    );
    out.push_str(
        "| server | mode | transfer s | load s | total s | vs redis disk | vs redis, same mode | master before GiB | master peak RSS GiB | master peak PSS GiB | replica peak RSS GiB | dump written GiB | full syncs | total s per round | loadavg (1 min) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let redis_disk: Vec<&Record> = records
        .iter()
        .filter(|r| r.server == Kind::Redis && r.mode == Mode::Disk)
        .collect();
    let baseline = (!redis_disk.is_empty()).then(|| med(&redis_disk, |r| r.total_s));
    let redis_total = |mode: Mode| {
        let rs: Vec<&Record> = records
            .iter()
            .filter(|r| r.server == Kind::Redis && r.mode == mode)
            .collect();
        (!rs.is_empty()).then(|| med(&rs, |r| r.total_s))
    };
    for kind in [Kind::Tandem, Kind::Redis] {
        for mode in [Mode::Disk, Mode::Diskless] {
            let rs: Vec<&Record> = records
                .iter()
                .filter(|r| r.server == kind && r.mode == mode)
                .collect();
            if rs.is_empty() {
                continue;
            }
            let total = med(&rs, |r| r.total_s);
            let g = |f: fn(&Record) -> u64| gib(med(&rs, |r| f(r) as f64) as u64);
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                kind.name(),
                mode.name(),
                med(&rs, |r| r.transfer_s),
                med(&rs, |r| r.load_s),
                total,
                baseline.map_or("-".into(), |b| format!("{:.2}x", total / b)),
                redis_total(mode).map_or("-".into(), |b| format!("{:.2}x", total / b)),
                g(|r| r.master_rss_before_bytes),
                g(|r| r.master_peak_rss_bytes),
                g(|r| r.master_peak_pss_bytes),
                g(|r| r.replica_peak_rss_bytes),
                g(|r| r.dump_bytes_written),
                rs.iter()
                    .map(|r| r.sync_full.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                rs.iter()
                    .map(|r| format!("{:.1}", r.total_s))
                    .collect::<Vec<_>>()
                    .join(", "),
                rs.iter()
                    .map(|r| r.loadavg.split(' ').next().unwrap_or("?"))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
    }
    if let Some(rate) = records.iter().find_map(|r| r.write_rate) {
        out.push_str(&write_load(records, rate));
    }
    let _ = writeln!(
        out,
        "\n![full sync, {}]({chart})\n",
        crate::plot::human(size)
    );
    out
}

/// The write-load table: what the paced writer did and what it cost the master.
fn write_load(records: &[Record], rate: u64) -> String {
    let mib = |b: u64| format!("{:.1}", b as f64 / f64::from(1u32 << 20));
    let mut out = format!(
        "\nUnder a write load of {rate} HSET/s on random records from `REPLICAOF` until the replica serves:\n\n\
         | server | mode | round | writes done | writes/s | replica omem peak MiB | repl buffers peak MiB | master peak RSS / before | master peak PSS - before MiB |\n|---|---|---|---|---|---|---|---|---|\n"
    );
    for r in records {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} | {} | {} | {:.3} | {} |",
            r.server.name(),
            r.mode.name(),
            r.round,
            r.writes_done,
            r.writes_done as f64 / r.total_s.max(f64::MIN_POSITIVE),
            mib(r.replica_omem_peak_bytes),
            mib(r.repl_buffers_peak_bytes),
            r.master_peak_rss_bytes as f64 / r.master_rss_before_bytes.max(1) as f64,
            mib(r
                .master_peak_pss_bytes
                .saturating_sub(r.master_rss_before_bytes)),
        );
    }
    out
}

/// `doc` with the text between the markers replaced by `body`.
pub fn replace_generated(doc: &str, body: &str) -> anyhow::Result<String> {
    let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
        bail!("the document has no {BEGIN} ... {END} section to rewrite");
    };
    if e < b {
        bail!("{END} comes before {BEGIN}");
    }
    Ok(format!("{}{BEGIN}\n{body}{}", &doc[..b], &doc[e..]))
}

pub fn run(a: &Args) -> anyhow::Result<()> {
    let doc_dir = a.doc.parent().unwrap_or(Path::new("."));
    let mut body = String::new();
    for json in &a.full_sync {
        let records: Vec<Record> = serde_json::from_str(
            &std::fs::read_to_string(json)
                .with_context(|| format!("cannot read {}", json.display()))?,
        )
        .with_context(|| format!("{} is not full-sync JSON", json.display()))?;
        let Some(first) = records.first() else {
            bail!("{} has no records", json.display());
        };
        let chart = format!(
            "benchmarks/full-sync-{}mib{}.png",
            first.dataset_bytes >> 20,
            first
                .write_rate
                .map_or(String::new(), |w| format!("-write{w}"))
        );
        std::fs::create_dir_all(doc_dir.join("benchmarks"))?;
        crate::full_sync::chart(&records, &doc_dir.join(&chart))?;
        body.push_str(&section(&records, &chart));
    }
    let doc = std::fs::read_to_string(&a.doc)
        .with_context(|| format!("cannot read {}", a.doc.display()))?;
    std::fs::write(&a.doc, replace_generated(&doc, &body)?)?;
    eprintln!("rewrote the generated section of {}", a.doc.display());
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn record(server: Kind, mode: Mode, total: f64, dump: u64) -> Record {
        Record {
            server,
            mode,
            round: 1,
            dataset_bytes: 512 << 20,
            keys: 100,
            records: 98,
            master_used_memory_bytes: 1 << 30,
            replica_diskless_load: "disabled".into(),
            snapshot_s: None,
            transfer_s: total / 2.0,
            load_s: total / 2.0,
            total_s: total,
            master_rss_before_bytes: 1 << 30,
            master_peak_rss_bytes: 2 << 30,
            master_peak_pss_bytes: 1 << 30,
            replica_peak_rss_bytes: 1 << 30,
            master_dump_bytes: dump,
            replica_dump_bytes: dump,
            dump_bytes_written: 2 * dump,
            sync_full: 1,
            replica_omem_peak_bytes: 0,
            repl_buffers_peak_bytes: 0,
            write_rate: None,
            tls: false,
            writes_done: 0,
            loadavg: "1.00 2.00 3.00".into(),
        }
    }

    #[test]
    fn section_rows_compare_with_redis_disk() {
        let rs = vec![
            record(Kind::Redis, Mode::Disk, 20.0, 1 << 29),
            record(Kind::Redis, Mode::Diskless, 8.0, 0),
            record(Kind::Tandem, Mode::Diskless, 5.0, 0),
        ];
        let s = section(&rs, "c.png");
        assert!(
            s.contains("### Full sync, 512 MiB of YCSB records (98 records, 1 round)"),
            "{s}"
        );
        assert!(
            s.contains("| redis | disk | 10.0 | 10.0 | 20.0 | 1.00x | 1.00x |"),
            "{s}"
        );
        assert!(
            s.contains("| redis | diskless | 4.0 | 4.0 | 8.0 | 0.40x | 1.00x |"),
            "{s}"
        );
        assert!(
            s.contains("| tandem | diskless | 2.5 | 2.5 | 5.0 | 0.25x | 0.62x |"),
            "{s}"
        );
        assert!(!s.contains("| tandem | disk |"), "{s}");
        assert!(s.contains("![full sync, 512 MiB](c.png)"), "{s}");
        assert!(!s.contains("write load"), "{s}");
    }

    #[test]
    fn write_load_gets_its_table() {
        let mut r = record(Kind::Redis, Mode::Diskless, 8.0, 0);
        r.write_rate = Some(5000);
        r.writes_done = 40_000;
        r.replica_omem_peak_bytes = 3 << 20;
        r.master_peak_pss_bytes = (1 << 30) + (512 << 20);
        let s = section(&[r], "c.png");
        assert!(s.contains("1 round, write load 5000 HSET/s)"), "{s}");
        assert!(
            s.contains("| redis | diskless | 1 | 40000 | 5000 | 3.0 | 0.0 | 2.000 | 512.0 |"),
            "{s}"
        );
    }

    #[test]
    fn only_the_generated_section_changes() {
        let doc = format!("intro\n{BEGIN}\nold\n{END}\noutro\n");
        let new = replace_generated(&doc, "new\n").unwrap();
        assert_eq!(new, format!("intro\n{BEGIN}\nnew\n{END}\noutro\n"));
        assert!(replace_generated("no markers", "x").is_err());
    }
}
