//! Heap accounting from jemalloc, the allocator the server runs on (as Redis does).
//!
//! `used_memory` must reflect the real heap for INFO and `maxmemory`. Refreshing jemalloc's
//! global statistics costs microseconds, too much per command, so the global figure is
//! refreshed at most once a millisecond and corrected in between by this thread's own
//! allocation counters, which are free to read. Almost every allocation of the keyspace
//! happens on this (the main) thread.

use std::cell::Cell;
use tikv_jemalloc_ctl::{epoch, stats, thread};

thread_local! {
    /// (global allocated at refresh, this thread's allocated and deallocated at refresh,
    /// refresh time in ms).
    static BASE: Cell<(u64, u64, u64, u64)> = const { Cell::new((0, 0, 0, 0)) };
}

fn thread_counters() -> (u64, u64) {
    let a = thread::allocatedp::read().map(|p| p.get()).unwrap_or(0);
    let d = thread::deallocatedp::read().map(|p| p.get()).unwrap_or(0);
    (a, d)
}

/// Refreshes the global figure from jemalloc.
pub fn refresh() -> u64 {
    let _ = epoch::advance();
    let global = stats::allocated::read().unwrap_or(0) as u64;
    let (a, d) = thread_counters();
    BASE.with(|b| b.set((global, a, d, crate::clock::now_ms())));
    global
}

/// Bytes allocated by the server (INFO `used_memory`).
pub fn used_memory() -> u64 {
    let (global, a0, d0, at) = BASE.with(Cell::get);
    if global == 0 || crate::clock::now_ms() > at {
        return refresh();
    }
    let (a, d) = thread_counters();
    (global + (a - a0)).saturating_sub(d - d0)
}

/// Resident set size of the process (INFO `used_memory_rss`), from jemalloc's view of the
/// mapped pages it retains.
pub fn rss() -> u64 {
    let _ = epoch::advance();
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or_else(
            || stats::resident::read().unwrap_or(0) as u64,
            |pages| pages * 4096,
        )
}

/// Peak of `used_memory` seen so far (INFO `used_memory_peak`).
pub fn peak(current: u64) -> u64 {
    thread_local!(static PEAK: Cell<u64> = const { Cell::new(0) });
    PEAK.with(|p| {
        p.set(p.get().max(current));
        p.get()
    })
}

/// `used_memory` when the server finished starting (INFO `used_memory_startup`): the first
/// reading taken, which [`crate::state::Server::new`] forces.
pub fn startup() -> u64 {
    thread_local!(static STARTUP: Cell<u64> = const { Cell::new(0) });
    STARTUP.with(|s| {
        if s.get() == 0 {
            s.set(used_memory());
        }
        s.get()
    })
}

/// jemalloc's allocated, active and resident byte counts (INFO `allocator_*`).
pub fn allocator() -> (u64, u64, u64) {
    let _ = epoch::advance();
    (
        stats::allocated::read().unwrap_or(0) as u64,
        stats::active::read().unwrap_or(0) as u64,
        stats::resident::read().unwrap_or(0) as u64,
    )
}
