//! What Redis 7.0 keeps about latency: the latency monitor's events (LATENCY LATEST,
//! HISTORY, RESET, DOCTOR: a command slower than `latency-monitor-threshold` is a spike of the
//! `command` or `fast-command` event) and one histogram per command (LATENCY HISTOGRAM, INFO
//! latencystats, with `latency-tracking`), read by monitoring such as redis_exporter.

use hashbrown::HashMap;
use hdrhistogram::Histogram;

/// Samples kept per event (Redis's `LATENCY_TS_LEN`).
pub const HISTORY_LEN: usize = 160;

/// One second's worst latency of an event.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Unix seconds; 0 for an unused slot.
    pub time: u64,
    pub latency_ms: u64,
}

/// The history of one event: a ring of per-second samples and the worst ever.
#[derive(Debug, Clone)]
pub struct Series {
    next: usize,
    pub max_ms: u64,
    samples: [Sample; HISTORY_LEN],
}

impl Series {
    fn new() -> Self {
        Series {
            next: 0,
            max_ms: 0,
            samples: [Sample::default(); HISTORY_LEN],
        }
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> impl Iterator<Item = Sample> + '_ {
        (0..HISTORY_LEN)
            .map(move |j| self.samples[(self.next + j) % HISTORY_LEN])
            .filter(|s| s.time != 0)
    }

    pub fn latest(&self) -> Sample {
        self.samples[(self.next + HISTORY_LEN - 1) % HISTORY_LEN]
    }
}

/// Redis's bounds for command histograms: 1 ns to 1 s, 2 significant digits.
const HISTOGRAM_LOW_NS: u64 = 1;
const HISTOGRAM_HIGH_NS: u64 = 1_000_000_000;
const HISTOGRAM_DIGITS: u8 = 2;

#[derive(Debug, Default)]
pub struct Latency {
    /// Events in the order they first spiked.
    events: Vec<(String, Series)>,
    /// By the command's full name (`config|get`).
    histograms: HashMap<&'static str, Histogram<u64>>,
}

impl Latency {
    /// Records a spike of `event` (Redis's `latencyAddSample`): one sample per second, the
    /// worst of that second.
    pub fn add_sample(&mut self, event: &str, latency_ms: u64, now_s: u64) {
        let series = match self.events.iter().position(|(e, _)| e == event) {
            Some(i) => &mut self.events[i].1,
            None => {
                self.events.push((event.to_string(), Series::new()));
                &mut self.events.last_mut().expect("just pushed").1
            }
        };
        series.max_ms = series.max_ms.max(latency_ms);
        let prev = (series.next + HISTORY_LEN - 1) % HISTORY_LEN;
        if series.samples[prev].time == now_s {
            let s = &mut series.samples[prev];
            s.latency_ms = s.latency_ms.max(latency_ms);
            return;
        }
        series.samples[series.next] = Sample {
            time: now_s,
            latency_ms,
        };
        series.next = (series.next + 1) % HISTORY_LEN;
    }

    pub fn events(&self) -> impl Iterator<Item = (&str, &Series)> {
        self.events.iter().map(|(e, s)| (e.as_str(), s))
    }

    /// The event named so (exactly, as Redis's dictionary lookup).
    pub fn event(&self, name: &[u8]) -> Option<&Series> {
        self.events
            .iter()
            .find(|(e, _)| e.as_bytes() == name)
            .map(|(_, s)| s)
    }

    /// Forgets the events named (case-insensitively), or all of them; returns how many.
    pub fn reset(&mut self, name: Option<&[u8]>) -> usize {
        let before = self.events.len();
        self.events
            .retain(|(e, _)| name.is_some_and(|n| !e.as_bytes().eq_ignore_ascii_case(n)));
        before - self.events.len()
    }

    /// Adds one call of `command` that took `micros` (clamped to the histogram's range as
    /// Redis clamps it).
    pub fn record_command(&mut self, command: &'static str, micros: u64) {
        let h = self.histograms.entry(command).or_insert_with(|| {
            Histogram::new_with_bounds(HISTOGRAM_LOW_NS, HISTOGRAM_HIGH_NS, HISTOGRAM_DIGITS)
                .expect("valid histogram bounds")
        });
        h.saturating_record(
            micros
                .saturating_mul(1000)
                .clamp(HISTOGRAM_LOW_NS, HISTOGRAM_HIGH_NS),
        );
    }

    /// The commands with a histogram, sorted by name.
    pub fn histograms(&self) -> Vec<(&'static str, &Histogram<u64>)> {
        let mut all: Vec<_> = self.histograms.iter().map(|(n, h)| (*n, h)).collect();
        all.sort_unstable_by_key(|(n, _)| *n);
        all
    }

    pub fn histogram(&self, command: &str) -> Option<&Histogram<u64>> {
        self.histograms.get(command)
    }

    /// CONFIG RESETSTAT's part.
    pub fn reset_histograms(&mut self) {
        self.histograms.clear();
    }
}

/// Columns of LATENCY GRAPH (Redis's `LATENCY_GRAPH_COLS`).
const GRAPH_COLUMNS: usize = 80;
/// Rows of the filled curve.
const GRAPH_ROWS: usize = 4;

/// LATENCY GRAPH: a header, then Redis's sparkline of the samples (filled, 4 rows of 3
/// steps each) with each sample's age written downwards under it.
pub fn graph(event: &str, series: &Series, now_s: u64) -> String {
    let samples: Vec<(u64, String)> = series
        .samples()
        .map(|s| (s.latency_ms, age_label(now_s.saturating_sub(s.time))))
        .collect();
    let low = samples.iter().map(|s| s.0).min().unwrap_or(0);
    let high = samples.iter().map(|s| s.0).max().unwrap_or(0);
    let mut out = format!(
        "{event} - high {high} ms, low {low} ms (all time high {} ms)\n",
        series.max_ms
    );
    out.push_str(&"-".repeat(GRAPH_COLUMNS));
    out.push('\n');
    for (n, chunk) in samples.chunks(GRAPH_COLUMNS).enumerate() {
        if n != 0 {
            out.push('\n');
        }
        sparkline(&mut out, chunk, low as f64, high as f64);
    }
    out
}

/// How long ago, as Redis labels a sample: `12s`, `3m`, `5h`, `2d`.
fn age_label(elapsed: u64) -> String {
    match elapsed {
        e if e < 60 => format!("{e}s"),
        e if e < 3600 => format!("{}m", e / 60),
        e if e < 86_400 => format!("{}h", e / 3600),
        e => format!("{}d", e / 86_400),
    }
}

/// Redis's `sparklineRenderRange` with the fill option: rows of `_o#` (`|` under the top),
/// a blank row, then the labels one character per row.
fn sparkline(out: &mut String, samples: &[(u64, String)], min: f64, max: f64) {
    const FILL: &[u8] = b"_o#";
    let steps = (FILL.len() * GRAPH_ROWS) as i64;
    let range = if max - min == 0.0 { 1.0 } else { max - min };
    let step_of = |v: u64| (((v as f64 - min) * steps as f64) / range) as i64;
    let steps_of: Vec<i64> = samples
        .iter()
        .map(|(v, _)| step_of(*v).clamp(0, steps - 1))
        .collect();
    let mut row = 0;
    loop {
        let mut line = vec![b' '; samples.len()];
        let mut more = false;
        if row < GRAPH_ROWS {
            more = true;
            for (j, step) in steps_of.iter().enumerate() {
                let idx = step - ((GRAPH_ROWS - row - 1) * FILL.len()) as i64;
                if (0..FILL.len() as i64).contains(&idx) {
                    line[j] = FILL[idx as usize];
                } else if idx >= FILL.len() as i64 {
                    line[j] = b'|';
                }
            }
        } else if row == GRAPH_ROWS {
            // The margin above the labels.
            more = true;
        } else {
            let at = row - GRAPH_ROWS - 1;
            for (j, (_, label)) in samples.iter().enumerate() {
                if let Some(&c) = label.as_bytes().get(at) {
                    more = true;
                    line[j] = c;
                }
            }
        }
        if !more {
            return;
        }
        out.push_str(&String::from_utf8_lossy(&line));
        out.push('\n');
        row += 1;
    }
}

/// LATENCY HISTOGRAM's buckets: (microseconds, calls at or below), on powers of two from
/// 1024 ns, each bucket only where the count grew (as Redis's `fillCommandCDF`).
pub fn cumulative(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut total = 0;
    let mut previous = 0;
    for step in h.iter_log(1024, 2.0) {
        total += step.count_since_last_iteration();
        if total > previous {
            out.push((h.highest_equivalent(step.value_iterated_to()) / 1000, total));
        }
        previous = total;
    }
    out
}

/// The latency at `percentile`, in microseconds with Redis's three decimals.
pub fn percentile_usec(h: &Histogram<u64>, percentile: f64) -> f64 {
    h.value_at_percentile(percentile) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sample_per_second_keeps_the_worst() {
        let mut l = Latency::default();
        l.add_sample("command", 5, 100);
        l.add_sample("command", 9, 100);
        l.add_sample("command", 3, 100);
        l.add_sample("command", 4, 101);
        let s = l.event(b"command").expect("event");
        let samples: Vec<_> = s.samples().collect();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].latency_ms, 9);
        assert_eq!(s.latest().latency_ms, 4);
        assert_eq!(s.max_ms, 9);
    }

    #[test]
    fn the_ring_keeps_the_last_samples() {
        let mut l = Latency::default();
        for t in 1..=(HISTORY_LEN as u64 + 10) {
            l.add_sample("command", t, t);
        }
        let s = l.event(b"command").expect("event");
        let times: Vec<u64> = s.samples().map(|x| x.time).collect();
        assert_eq!(times.len(), HISTORY_LEN);
        assert_eq!(times[0], 11);
        assert_eq!(*times.last().expect("samples"), HISTORY_LEN as u64 + 10);
    }

    #[test]
    fn graph_draws_what_redis_draws() {
        let mut l = Latency::default();
        l.add_sample("command", 20, 97);
        l.add_sample("command", 50, 99);
        l.add_sample("command", 10, 100);
        let text = graph("command", l.event(b"command").expect("event"), 100);
        // Redis 7.0's LATENCY GRAPH for the same samples, ages and latencies.
        let want = format!(
            "command - high 50 ms, low 10 ms (all time high 50 ms)\n{}\n # \n | \n_| \n||_\n   \n310\nsss\n",
            "-".repeat(80)
        );
        assert_eq!(text, want);
    }

    #[test]
    fn reset_by_name_or_all() {
        let mut l = Latency::default();
        l.add_sample("command", 1, 1);
        l.add_sample("fast-command", 1, 1);
        assert_eq!(l.reset(Some(b"COMMAND")), 1);
        assert_eq!(l.reset(Some(b"nothing")), 0);
        assert_eq!(l.reset(None), 1);
        assert_eq!(l.events().count(), 0);
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut l = Latency::default();
        for micros in [1, 1, 3, 100, 2_000_000] {
            l.record_command("get", micros);
        }
        let h = l.histogram("get").expect("histogram");
        let cdf = cumulative(h);
        assert_eq!(cdf.first().expect("bucket").1, 2);
        assert_eq!(cdf.last().expect("bucket").1, 5);
        assert!(cdf.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1));
        // Above a second: clamped to it.
        assert!(percentile_usec(h, 100.0) <= 1_000_000.0 * 1.01);
    }
}
