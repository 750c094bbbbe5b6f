//! Redis's partial quicksort (`pqsort.c`, Bentley & McIlroy's quicksort that skips the
//! partitions outside a wanted index range), used by GEOSEARCH with COUNT and SORT with
//! LIMIT.
//!
//! It is not stable, so which of several equal elements come first, and which of them fall
//! inside the range, depends on the exact sequence of swaps: this reproduces it step for
//! step, so replies match Redis's when elements tie. It knows nothing of what it sorts.

use std::cmp::Ordering;

/// Sorts `v` enough that the elements at positions `lo..=hi` are those (and in the order)
/// Redis's `pqsort(v, n, size, cmp, lo, hi)` leaves there.
pub fn pqsort<T>(v: &mut [T], lo: usize, hi: usize, cmp: &mut impl FnMut(&T, &T) -> Ordering) {
    let n = v.len();
    run(v, 0, n, lo, hi, cmp);
}

fn med3<T>(
    v: &[T],
    a: usize,
    b: usize,
    c: usize,
    cmp: &mut impl FnMut(&T, &T) -> Ordering,
) -> usize {
    if cmp(&v[a], &v[b]).is_lt() {
        if cmp(&v[b], &v[c]).is_lt() {
            b
        } else if cmp(&v[a], &v[c]).is_lt() {
            c
        } else {
            a
        }
    } else if cmp(&v[b], &v[c]).is_gt() {
        b
    } else if cmp(&v[a], &v[c]).is_lt() {
        a
    } else {
        c
    }
}

/// Swaps the `n` elements starting at `a` with those starting at `b`, one by one.
fn vecswap<T>(v: &mut [T], a: usize, b: usize, n: usize) {
    for i in 0..n {
        v.swap(a + i, b + i);
    }
}

/// Whether the segment `[start, start + len)` holds any position of `lo..=hi`.
fn wanted(start: usize, len: usize, lo: usize, hi: usize) -> bool {
    !((lo < start && hi < start) || (lo >= start + len && hi >= start + len))
}

fn run<T>(
    v: &mut [T],
    mut base: usize,
    mut n: usize,
    lo: usize,
    hi: usize,
    cmp: &mut impl FnMut(&T, &T) -> Ordering,
) {
    loop {
        if n < 7 {
            for pm in base + 1..base + n {
                let mut pl = pm;
                while pl > base && cmp(&v[pl - 1], &v[pl]).is_gt() {
                    v.swap(pl, pl - 1);
                    pl -= 1;
                }
            }
            return;
        }
        let mut pm = base + n / 2;
        if n > 7 {
            let mut pl = base;
            let mut pn = base + n - 1;
            if n > 40 {
                let d = n / 8;
                pl = med3(v, pl, pl + d, pl + 2 * d, cmp);
                pm = med3(v, pm - d, pm, pm + d, cmp);
                pn = med3(v, pn - 2 * d, pn - d, pn, cmp);
            }
            pm = med3(v, pl, pm, pn, cmp);
        }
        v.swap(base, pm);
        let (mut pa, mut pb) = (base + 1, base + 1);
        let (mut pc, mut pd) = (base + n - 1, base + n - 1);
        loop {
            while pb <= pc {
                let c = cmp(&v[pb], &v[base]);
                if c.is_gt() {
                    break;
                }
                if c.is_eq() {
                    v.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb <= pc {
                let c = cmp(&v[pc], &v[base]);
                if c.is_lt() {
                    break;
                }
                if c.is_eq() {
                    v.swap(pc, pd);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb > pc {
                break;
            }
            v.swap(pb, pc);
            pb += 1;
            pc -= 1;
        }
        let pn = base + n;
        let r = (pa - base).min(pb - pa);
        vecswap(v, base, pb - r, r);
        let r = (pd - pc).min(pn - pd - 1);
        vecswap(v, pb, pn - r, r);
        let r = pb - pa;
        if r > 1 && wanted(base, r, lo, hi) {
            run(v, base, r, lo, hi, cmp);
        }
        let r = pd - pc;
        if r <= 1 {
            return;
        }
        base = pn - r;
        n = r;
        if !wanted(base, n, lo, hi) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wanted_range_ends_sorted() {
        let mut seed = 12345u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            (seed >> 33) % 50
        };
        for len in [0usize, 1, 5, 7, 8, 41, 300] {
            let v: Vec<u64> = (0..len).map(|_| next()).collect();
            let mut sorted = v.clone();
            sorted.sort_unstable();
            for (lo, hi) in [(0, 2), (3, 9), (0, len.saturating_sub(1))] {
                if len == 0 || hi >= len {
                    continue;
                }
                let mut w = v.clone();
                pqsort(&mut w, lo, hi, &mut |a, b| a.cmp(b));
                assert_eq!(w[lo..=hi], sorted[lo..=hi], "len {len} range {lo}..={hi}");
            }
        }
    }
}
