//! INFO persistence's `aof_*` fields, named and ordered as Redis 7.0 prints them (the size
//! fields only while the AOF is on).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use crate::state::Server;
use crate::state::aof::AofState;

/// Appends the AOF fields, from `aof_enabled` to `module_fork_last_cow_size`, then the
/// fields of an enabled AOF.
pub fn persistence(srv: &Server, out: &mut String) {
    let a = &srv.aof;
    let status = |failed: bool| if failed { "err" } else { "ok" };
    let current_rewrite = a
        .rewrite
        .as_ref()
        .map_or(-1, |r| r.started.elapsed().as_secs() as i64);
    let fields: [(&str, String); 12] = [
        ("aof_enabled", u8::from(a.enabled()).to_string()),
        (
            "aof_rewrite_in_progress",
            u8::from(a.rewrite.is_some()).to_string(),
        ),
        (
            "aof_rewrite_scheduled",
            u8::from(a.rewrite_scheduled).to_string(),
        ),
        (
            "aof_last_rewrite_time_sec",
            a.last_rewrite_time_sec.unwrap_or(-1).to_string(),
        ),
        ("aof_current_rewrite_time_sec", current_rewrite.to_string()),
        (
            "aof_last_bgrewrite_status",
            status(a.last_bgrewrite_failed).into(),
        ),
        ("aof_rewrites", a.rewrites.to_string()),
        (
            "aof_rewrites_consecutive_failures",
            a.rewrites_consecutive_failures.to_string(),
        ),
        (
            "aof_last_write_status",
            status(crate::aof::writer::write_error(srv).is_some()).into(),
        ),
        ("aof_last_cow_size", "0".into()),
        ("module_fork_in_progress", "0".into()),
        ("module_fork_last_cow_size", "0".into()),
    ];
    for (name, value) in fields {
        let _ = write!(out, "{name}:{value}\r\n");
    }
    if a.state == AofState::Off {
        return;
    }
    let pending_fsync = a
        .sync
        .as_ref()
        .is_some_and(|s| s.in_progress.load(Ordering::Acquire));
    let enabled: [(&str, String); 6] = [
        ("aof_current_size", a.current_size.to_string()),
        ("aof_base_size", a.base_size.to_string()),
        (
            "aof_pending_rewrite",
            u8::from(a.rewrite_scheduled).to_string(),
        ),
        ("aof_buffer_length", a.unwritten.len().to_string()),
        ("aof_pending_bio_fsync", u8::from(pending_fsync).to_string()),
        ("aof_delayed_fsync", a.delayed_fsync.to_string()),
    ];
    for (name, value) in enabled {
        let _ = write!(out, "{name}:{value}\r\n");
    }
}
