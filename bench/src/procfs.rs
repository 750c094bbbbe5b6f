//! What the benchmarks read from /proc and the file system: resident memory of a process
//! tree (a server and its fork children), the memory the machine has available, the load
//! average, and the bytes of files in a server's directory. Parsers are plain functions of
//! the file text so they are tested as data; this module never changes anything.

use std::path::Path;

/// A `Name:   1234 kB` field of /proc/<pid>/status, /proc/meminfo or smaps_rollup, in bytes.
pub fn kb_field(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

fn read_kb(pid: u32, file: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|t| kb_field(&t, field))
        .unwrap_or(0)
}

/// Memory of a process tree at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub struct TreeMemory {
    /// Sum of VmRSS: counts a page shared by parent and fork child once per process, so it
    /// is an upper bound of the memory used while a fork is alive.
    pub rss: u64,
    /// Sum of Pss (smaps_rollup): shared pages split between their users, so the sum is
    /// what the tree really holds. Read only while the tree has more than one process
    /// (reading it walks every page table); otherwise it equals `rss`.
    pub pss: u64,
}

pub fn tree_memory(pid: u32) -> TreeMemory {
    let pids = tandem_testkit::process_tree(pid);
    let rss = pids.iter().map(|&p| read_kb(p, "status", "VmRSS")).sum();
    let pss = if pids.len() > 1 {
        pids.iter()
            .map(|&p| read_kb(p, "smaps_rollup", "Pss"))
            .sum()
    } else {
        rss
    };
    TreeMemory { rss, pss }
}

/// MemAvailable from /proc/meminfo.
pub fn mem_available() -> anyhow::Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    kb_field(&text, "MemAvailable")
        .ok_or_else(|| anyhow::anyhow!("/proc/meminfo has no MemAvailable"))
}

/// Bytes free for an unprivileged writer on the file system holding `dir` (`df`).
pub fn disk_available(dir: &Path) -> anyhow::Result<u64> {
    let out = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()?;
    df_avail(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| anyhow::anyhow!("cannot read the free space of {} from df", dir.display()))
}

/// The number under `df --output=avail`'s header.
pub fn df_avail(text: &str) -> Option<u64> {
    text.lines().nth(1)?.trim().parse().ok()
}

/// The three load averages, as /proc/loadavg prints them.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Total size of the regular files under `dir`, except `skip` (the server's log).
pub fn dir_bytes(dir: &Path, skip: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.path() != skip)
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some(if m.is_dir() {
                dir_bytes(&e.path(), skip)
            } else {
                m.len()
            })
        })
        .sum()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn kb_fields() {
        let status = "Name:\tredis-server\nVmRSS:\t   10240 kB\nVmSwap:\t0 kB\n";
        assert_eq!(kb_field(status, "VmRSS"), Some(10 << 20));
        assert_eq!(kb_field(status, "VmHWM"), None);
        let meminfo = "MemTotal:       24000000 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(kb_field(meminfo, "MemAvailable"), Some(20_000_000 * 1024));
        // A prefix of another field's name is not that field.
        assert_eq!(kb_field(meminfo, "Mem"), None);
    }

    #[test]
    fn df_output() {
        assert_eq!(df_avail("    Avail\n18253611008\n"), Some(18_253_611_008));
        assert_eq!(df_avail("    Avail\n"), None);
    }

    #[test]
    fn own_process_tree_has_memory() {
        let me = std::process::id();
        let m = tree_memory(me);
        assert!(m.rss > 0 && m.pss == m.rss);
    }

    #[test]
    fn dir_bytes_skips_the_log() {
        let dir = std::env::temp_dir().join(format!("tandem-bench-procfs-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("dump.rdb"), [0u8; 100]).unwrap();
        std::fs::write(dir.join("sub/temp.rdb"), [0u8; 10]).unwrap();
        std::fs::write(dir.join("server.log"), [0u8; 1000]).unwrap();
        assert_eq!(dir_bytes(&dir, &dir.join("server.log")), 110);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
