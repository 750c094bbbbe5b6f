//! LATENCY: the latency monitor's events and the per-command histograms (crate::latency),
//! with Redis 7.0's replies and texts.

use super::{CmdError, CmdResult, Ctx, Spec, container, eq, flags::*, help};
use crate::latency::{self, Series};
use crate::protocol::Args;
use std::fmt::Write as _;

pub static COMMANDS: &[Spec] = &[container(
    "latency",
    -2,
    ADMIN | NOSCRIPT | LOADING | STALE,
    "server",
    latency_cmd,
    &[
        ("doctor", "latency|doctor", 2),
        ("graph", "latency|graph", 3),
        ("help", "latency|help", 2),
        ("histogram", "latency|histogram", -2),
        ("history", "latency|history", 3),
        ("latest", "latency|latest", 2),
        ("reset", "latency|reset", -2),
    ],
)];

const LATENCY_HELP: &[&str] = &[
    "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return a human readable latency analysis report.",
    "GRAPH <event>",
    "    Return an ASCII latency graph for the <event> class.",
    "HISTORY <event>",
    "    Return time-latency samples for the <event> class.",
    "LATEST",
    "    Return the latest latency samples for all events.",
    "RESET [<event> ...]",
    "    Reset latency data of one or more <event> classes.",
    "    (default: reset all data for all event classes)",
    "HISTOGRAM [COMMAND ...]",
    "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
    "    If no commands are specified then all histograms are replied.",
    "HELP",
    "    Prints this help.",
];

fn latency_cmd(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sub = args.get(1);
    if eq(sub, "latest") {
        let events: Vec<(String, u64, u64, u64)> = ctx
            .srv
            .latency
            .events()
            .map(|(e, s)| {
                let last = s.latest();
                (e.to_string(), last.time, last.latency_ms, s.max_ms)
            })
            .collect();
        ctx.reply.array(events.len());
        for (event, time, latency, max) in events {
            ctx.reply.array(4);
            ctx.reply.bulk(event.as_bytes());
            ctx.reply.int(time as i64);
            ctx.reply.int(latency as i64);
            ctx.reply.int(max as i64);
        }
    } else if eq(sub, "history") {
        let samples: Vec<_> = ctx
            .srv
            .latency
            .event(args.get(2))
            .map(|s| s.samples().collect())
            .unwrap_or_default();
        ctx.reply.array(samples.len());
        for s in samples {
            ctx.reply.array(2);
            ctx.reply.int(s.time as i64);
            ctx.reply.int(s.latency_ms as i64);
        }
    } else if eq(sub, "reset") {
        let n = if args.len() == 2 {
            ctx.srv.latency.reset(None)
        } else {
            (2..args.len())
                .map(|i| ctx.srv.latency.reset(Some(args.get(i))))
                .sum()
        };
        ctx.reply.int(n as i64);
    } else if eq(sub, "histogram") {
        histogram(ctx, args);
    } else if eq(sub, "doctor") {
        let report = doctor(ctx, crate::clock::now_ms() / 1000);
        ctx.reply.verbatim(report.as_bytes());
    } else if eq(sub, "graph") {
        let event = String::from_utf8_lossy(args.get(2)).into_owned();
        let Some(series) = ctx.srv.latency.event(args.get(2)) else {
            return Err(CmdError::msg(format!(
                "ERR No samples available for event '{event}'"
            )));
        };
        let text = latency::graph(&event, series, crate::clock::now_ms() / 1000);
        ctx.reply.verbatim(text.as_bytes());
    } else {
        help(ctx, LATENCY_HELP);
    }
    Ok(())
}

/// LATENCY HISTOGRAM [command ...]: every command with calls, or the named ones (a container
/// stands for its subcommands), each as {calls, histogram_usec}.
fn histogram(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let all = ctx.srv.latency.histograms();
    let chosen: Vec<_> = if args.len() == 2 {
        all
    } else {
        let mut picked = Vec::new();
        for i in 2..args.len() {
            let Some(spec) = super::names::lookup(&ctx.srv.commands, args.get(i)) else {
                continue;
            };
            picked.extend(all.iter().filter(|(name, _)| {
                *name == spec.name || name.split_once('|').is_some_and(|(c, _)| c == spec.name)
            }));
        }
        picked
    };
    ctx.reply.map(chosen.len());
    for (name, h) in chosen {
        ctx.reply.bulk(name.as_bytes());
        ctx.reply.map(2);
        ctx.reply.bulk(b"calls");
        ctx.reply.int(h.len() as i64);
        ctx.reply.bulk(b"histogram_usec");
        let buckets = latency::cumulative(h);
        ctx.reply.map(buckets.len());
        for (usec, count) in buckets {
            ctx.reply.int(usec as i64);
            ctx.reply.int(count as i64);
        }
    }
}

/// LATENCY DOCTOR's report, worded as Redis 7.0's for the events tandem-server records.
fn doctor(ctx: &Ctx<'_>, now_s: u64) -> String {
    let cfg = &ctx.srv.config;
    let events: Vec<(&str, &Series)> = ctx.srv.latency.events().collect();
    if events.is_empty() && cfg.latency_monitor_threshold == 0 {
        return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n".into();
    }
    let mut report = String::new();
    let (mut slowlog_enable, mut slowlog_tune, mut slowlog_inspect, mut scheduler) =
        (false, false, false, false);
    let mut advices = 0;
    for (n, (event, series)) in events.iter().enumerate() {
        if n == 0 {
            report.push_str("Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n");
        }
        let samples: Vec<u64> = series.samples().map(|s| s.latency_ms).collect();
        let count = samples.len() as u64;
        let avg = samples.iter().sum::<u64>() / count.max(1);
        let mad = samples.iter().map(|l| l.abs_diff(avg)).sum::<u64>() / count.max(1);
        let oldest = series.samples().map(|s| s.time).min().unwrap_or(now_s);
        let period = now_s.saturating_sub(oldest).max(1);
        let _ = write!(
            report,
            "{}. {event}: {count} latency spikes (average {avg}ms, mean deviation {mad}ms, period {:.2} sec). Worst all time event {}ms.",
            n + 1,
            period as f64 / count.max(1) as f64,
            series.max_ms
        );
        if event.eq_ignore_ascii_case("command") {
            if cfg.slowlog_log_slower_than < 0 {
                slowlog_enable = true;
                advices += 1;
            } else if (cfg.slowlog_log_slower_than / 1000) as u64 > cfg.latency_monitor_threshold {
                slowlog_tune = true;
                advices += 1;
            }
            slowlog_inspect = true;
            advices += 2;
        }
        if event.eq_ignore_ascii_case("fast-command") {
            scheduler = true;
            advices += 1;
        }
        report.push('\n');
    }
    if events.is_empty() {
        report.push_str("Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n");
        return report;
    }
    if advices == 0 {
        report.push_str("\nWhile there are latency events logged, I'm not able to suggest any easy fix. Please use the Redis community to get some help, providing this report in your help request.\n");
        return report;
    }
    report.push_str("\nI have a few advices for you:\n\n");
    let threshold_us = cfg.latency_monitor_threshold * 1000;
    if slowlog_enable {
        let _ = writeln!(
            report,
            "- There are latency issues with potentially slow commands you are using. Try to enable the Slow Log Redis feature using the command 'CONFIG SET slowlog-log-slower-than {threshold_us}'. If the Slow log is disabled Redis is not able to log slow commands execution for you."
        );
    }
    if slowlog_tune {
        let _ = writeln!(
            report,
            "- Your current Slow Log configuration only logs events that are slower than your configured latency monitor threshold. Please use 'CONFIG SET slowlog-log-slower-than {threshold_us}'."
        );
    }
    if slowlog_inspect {
        report.push_str("- Check your Slow Log to understand what are the commands you are running which are too slow to execute. Please check https://redis.io/commands/slowlog for more information.\n");
    }
    if scheduler {
        report.push_str("- The system is slow to execute Redis code paths not containing system calls. This usually means the system does not provide Redis CPU time to run for long periods. You should try to:\n  1) Lower the system load.\n  2) Use a computer / VM just for Redis if you are running other software in the same system.\n  3) Check if you have a \"noisy neighbour\" problem.\n  4) Check with 'redis-cli --intrinsic-latency 100' what is the intrinsic latency in your system.\n  5) Check if the problem is allocator-related by recompiling Redis with MALLOC=libc, if you are using Jemalloc. However this may create fragmentation problems.\n");
    }
    if slowlog_inspect {
        report.push_str("- Deleting, expiring or evicting (because of maxmemory policy) large objects is a blocking operation. If you have very large objects that are often deleted, expired, or evicted, try to fragment those objects into multiple smaller objects.\n");
    }
    report
}
