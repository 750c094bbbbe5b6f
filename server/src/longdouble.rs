//! x87 80-bit `long double` arithmetic in software, for HINCRBYFLOAT (and INCRBYFLOAT).
//!
//! Redis parses these increments with `strtold`, adds in `long double` (64-bit mantissa on
//! x86-64) and prints with `%.17Lf` minus trailing zeros, so `0.1` added three times reads
//! `0.3`, not f64's `0.30000000000000004`; values up to 1e4932 are accepted and printed in
//! full. Clients see those exact strings, so this module reproduces the three steps exactly
//! (correct rounding, ties to even) with a small big-integer helper. It does nothing else.

/// A finite or infinite `long double` (NaN is never produced: Redis rejects it on input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LongDouble {
    /// `(-1)^neg * mant * 2^exp`; `mant` has its top bit set unless the value is subnormal
    /// or zero.
    Finite {
        neg: bool,
        mant: u64,
        exp: i32,
    },
    Inf {
        neg: bool,
    },
}

/// Exponent of the lowest mantissa bit of the smallest subnormal.
const MIN_LSB: i64 = -16445;
/// Values at or above 2^MAX_BITS overflow.
const MAX_BITS: i64 = 16384;
/// `strtold` input longer than Redis's buffer is refused.
const MAX_INPUT: usize = 5 * 1024;

impl LongDouble {
    pub const ZERO: LongDouble = LongDouble::Finite {
        neg: false,
        mant: 0,
        exp: 0,
    };

    pub fn is_finite(self) -> bool {
        matches!(self, LongDouble::Finite { .. })
    }

    /// `%.17Lf` with trailing zeros (and a trailing dot) removed, `-0` written `0`: Redis's
    /// `LD_STR_HUMAN`.
    pub fn to_human_string(self) -> String {
        let LongDouble::Finite { neg, mant, exp } = self else {
            return match self {
                LongDouble::Inf { neg: true } => "-inf".into(),
                _ => "inf".into(),
            };
        };
        let scaled = if exp >= 0 {
            Big::from_u64(mant).shl(exp as u32).mul_pow10(17)
        } else {
            let n = Big::from_u64(mant).mul_pow10(17);
            let shift = (-exp) as u32;
            let (q, half, sticky) = n.shr_round_bits(shift);
            if half && (sticky || q.is_odd()) {
                q.add(&Big::from_u64(1))
            } else {
                q
            }
        };
        let digits = scaled.to_decimal();
        let digits = format!("{digits:0>18}");
        let (int, frac) = digits.split_at(digits.len() - 17);
        let frac = frac.trim_end_matches('0');
        let mut s = String::with_capacity(digits.len() + 2);
        if neg {
            s.push('-');
        }
        s.push_str(int);
        if !frac.is_empty() {
            s.push('.');
            s.push_str(frac);
        }
        if s == "-0" { "0".into() } else { s }
    }
}

/// A double widened to `long double` (exactly, as C's conversion): GEOPOS and WITHCOORD
/// print coordinates through `long double`.
impl From<f64> for LongDouble {
    fn from(v: f64) -> LongDouble {
        let neg = v.is_sign_negative();
        if v.is_infinite() {
            return LongDouble::Inf { neg };
        }
        let bits = v.to_bits();
        let field = ((bits >> 52) & 0x7ff) as i32;
        let frac = bits & ((1 << 52) - 1);
        let (mant, exp) = if field == 0 {
            (frac, -1074)
        } else {
            (frac | (1 << 52), field - 1075)
        };
        if mant == 0 {
            return LongDouble::Finite {
                neg,
                mant: 0,
                exp: 0,
            };
        }
        let shift = mant.leading_zeros() as i32;
        LongDouble::Finite {
            neg,
            mant: mant << shift,
            exp: exp - shift,
        }
    }
}

impl std::ops::Add for LongDouble {
    type Output = LongDouble;

    /// The correctly rounded sum.
    fn add(self, other: LongDouble) -> LongDouble {
        let (
            LongDouble::Finite {
                neg: na,
                mant: ma,
                exp: ea,
            },
            LongDouble::Finite {
                neg: nb,
                mant: mb,
                exp: eb,
            },
        ) = (self, other)
        else {
            return match (self, other) {
                (LongDouble::Inf { neg: a }, LongDouble::Inf { neg: b }) if a != b => {
                    // inf - inf is NaN; callers reject non-finite results anyway.
                    LongDouble::Inf { neg: a }
                }
                (LongDouble::Inf { .. }, _) => self,
                _ => other,
            };
        };
        if mb == 0 {
            return if ma == 0 {
                LongDouble::Finite {
                    neg: na && nb,
                    mant: 0,
                    exp: 0,
                }
            } else {
                self
            };
        }
        if ma == 0 {
            return other;
        }
        let top_a = i64::from(ea) + 64;
        let top_b = i64::from(eb) + 64;
        // Far apart: the smaller is below a quarter ulp of the larger and cannot change it.
        if top_a - top_b > 130 {
            return self;
        }
        if top_b - top_a > 130 {
            return other;
        }
        let lo = ea.min(eb);
        let a = Big::from_u64(ma).shl((ea - lo) as u32);
        let b = Big::from_u64(mb).shl((eb - lo) as u32);
        let (neg, mag) = if na == nb {
            (na, a.add(&b))
        } else {
            match a.cmp(&b) {
                std::cmp::Ordering::Less => (nb, b.sub(&a)),
                _ => (na, a.sub(&b)),
            }
        };
        if mag.is_zero() {
            return LongDouble::ZERO;
        }
        round(neg, &mag, false, i64::from(lo))
    }
}

/// Parses like Redis's `string2ld`: `strtold` syntax (decimal, hex, inf/infinity), the whole
/// string consumed, no leading space, no NaN, no overflow, no underflow to zero.
pub fn parse(s: &[u8]) -> Option<LongDouble> {
    if s.is_empty() || s.len() >= MAX_INPUT {
        return None;
    }
    let (neg, body) = match s[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        return Some(LongDouble::Inf { neg });
    }
    let v = if body.len() > 2 && body[0] == b'0' && (body[1] | 0x20) == b'x' {
        parse_hex(neg, &body[2..])?
    } else {
        parse_decimal(neg, body)?
    };
    match v {
        // Underflow of a nonzero input to zero is an error for Redis (ERANGE).
        LongDouble::Finite { mant: 0, .. } if !is_zero_literal(body) => None,
        LongDouble::Inf { .. } => None,
        v => Some(v),
    }
}

/// True when every digit of the mantissa part is zero.
fn is_zero_literal(body: &[u8]) -> bool {
    let hex = body.len() > 2 && body[0] == b'0' && (body[1] | 0x20) == b'x';
    let mant = if hex { &body[2..] } else { body };
    let end = mant
        .iter()
        .position(|&c| {
            if hex {
                c | 0x20 == b'p'
            } else {
                c | 0x20 == b'e'
            }
        })
        .unwrap_or(mant.len());
    mant[..end].iter().all(|&c| c == b'0' || c == b'.')
}

/// Splits `digits[.digits]` off the front; returns (all digits, digits after the point, rest).
fn split_mantissa(s: &[u8], is_digit: impl Fn(u8) -> bool) -> Option<(Vec<u8>, usize, &[u8])> {
    let mut digits = Vec::new();
    let mut frac = 0;
    let mut seen_point = false;
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if is_digit(c) {
            digits.push(c);
            if seen_point {
                frac += 1;
            }
        } else if c == b'.' && !seen_point {
            seen_point = true;
        } else {
            break;
        }
        i += 1;
    }
    if digits.is_empty() {
        return None;
    }
    Some((digits, frac, &s[i..]))
}

/// An exponent suffix (`e12`, `p-3`): the whole rest must be the sign and digits.
fn parse_exponent(rest: &[u8], marker: u8) -> Option<i64> {
    if rest.is_empty() {
        return Some(0);
    }
    if rest[0] | 0x20 != marker {
        return None;
    }
    let r = &rest[1..];
    let (neg, d) = match r.first() {
        Some(b'-') => (true, &r[1..]),
        Some(b'+') => (false, &r[1..]),
        _ => (false, r),
    };
    if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: i64 = 0;
    for &c in d {
        v = (v * 10 + i64::from(c - b'0')).min(1 << 40);
    }
    Some(if neg { -v } else { v })
}

fn parse_decimal(neg: bool, body: &[u8]) -> Option<LongDouble> {
    let (digits, frac, rest) = split_mantissa(body, |c| c.is_ascii_digit())?;
    let e10 = parse_exponent(rest, b'e')? - frac as i64;
    let first = digits.iter().position(|&c| c != b'0');
    let Some(first) = first else {
        return Some(LongDouble::Finite {
            neg,
            mant: 0,
            exp: 0,
        });
    };
    let digits = &digits[first..];
    // Magnitude in decimal: 10^(sci) <= |v| < 10^(sci+1).
    let sci = e10 + digits.len() as i64 - 1;
    if sci > 4933 {
        return Some(LongDouble::Inf { neg });
    }
    if sci < -4952 {
        return Some(LongDouble::Finite {
            neg,
            mant: 0,
            exp: 0,
        });
    }
    let d = Big::from_decimal(digits);
    if e10 >= 0 {
        let n = d.mul_pow10(e10 as u32);
        Some(round(neg, &n, false, 0))
    } else {
        // d / 10^k: scale up by 2^s so the quotient keeps well over 64 significant bits.
        let k = (-e10) as u32;
        let den_bits = (f64::from(k) * std::f64::consts::LOG2_10).ceil() as i64 + 1;
        let s = (70 + den_bits - d.bits() as i64).max(0) as u32;
        let (q, sticky) = d.shl(s).div_pow10(k);
        Some(round(neg, &q, sticky, -i64::from(s)))
    }
}

fn parse_hex(neg: bool, body: &[u8]) -> Option<LongDouble> {
    let (digits, frac, rest) = split_mantissa(body, |c| c.is_ascii_hexdigit())?;
    let e2 = parse_exponent(rest, b'p')? - 4 * frac as i64;
    let mut n = Big::default();
    for &c in &digits {
        let v = (c as char).to_digit(16).unwrap_or(0);
        n = n.shl(4).add(&Big::from_u64(u64::from(v)));
    }
    if n.is_zero() {
        return Some(LongDouble::Finite {
            neg,
            mant: 0,
            exp: 0,
        });
    }
    if e2 + n.bits() as i64 > MAX_BITS + 8 {
        return Some(LongDouble::Inf { neg });
    }
    if e2 + (n.bits() as i64) < MIN_LSB - 8 {
        return Some(LongDouble::Finite {
            neg,
            mant: 0,
            exp: 0,
        });
    }
    Some(round(neg, &n, false, e2))
}

/// Rounds `n * 2^e` (plus a nonzero tail below it when `sticky`) to a long double.
fn round(neg: bool, n: &Big, sticky: bool, e: i64) -> LongDouble {
    let bits = n.bits() as i64;
    let lsb = (bits - 64 + e).max(MIN_LSB);
    let shift = lsb - e;
    let (mant, mut lsb) = if shift <= 0 {
        (n.shl((-shift) as u32).low_u64(), lsb)
    } else {
        let (q, half, rest) = n.shr_round_bits(shift as u32);
        let up = half && (rest || sticky || q.is_odd());
        let q = if up { q.add(&Big::from_u64(1)) } else { q };
        if q.bits() > 64 {
            (q.shr_round_bits(1).0.low_u64(), lsb + 1)
        } else {
            (q.low_u64(), lsb)
        }
    };
    if mant == 0 {
        lsb = 0;
    }
    let top = 64 - i64::from(mant.leading_zeros()) + lsb;
    if mant != 0 && top > MAX_BITS {
        return LongDouble::Inf { neg };
    }
    LongDouble::Finite {
        neg,
        mant,
        exp: lsb as i32,
    }
}

/// Just enough unsigned big-integer arithmetic for exact conversions (little-endian limbs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(v: u64) -> Big {
        let mut b = Big(vec![v as u32, (v >> 32) as u32]);
        b.trim();
        b
    }

    fn from_decimal(digits: &[u8]) -> Big {
        let mut b = Big::default();
        for chunk in digits.chunks(9) {
            let mut v = 0u32;
            for &c in chunk {
                v = v * 10 + u32::from(c - b'0');
            }
            b.mul_small_add(10u32.pow(chunk.len() as u32), v);
        }
        b
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn is_odd(&self) -> bool {
        self.0.first().is_some_and(|l| l & 1 == 1)
    }

    fn bits(&self) -> u64 {
        match self.0.last() {
            None => 0,
            Some(&top) => (self.0.len() as u64) * 32 - u64::from(top.leading_zeros()),
        }
    }

    fn low_u64(&self) -> u64 {
        let lo = u64::from(self.0.first().copied().unwrap_or(0));
        let hi = u64::from(self.0.get(1).copied().unwrap_or(0));
        lo | (hi << 32)
    }

    fn bit(&self, i: u64) -> bool {
        self.0
            .get((i / 32) as usize)
            .is_some_and(|l| (l >> (i % 32)) & 1 == 1)
    }

    fn mul_small_add(&mut self, m: u32, a: u32) {
        let mut carry = u64::from(a);
        for l in &mut self.0 {
            let v = u64::from(*l) * u64::from(m) + carry;
            *l = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    fn mul_pow10(mut self, mut k: u32) -> Big {
        while k > 0 {
            let step = k.min(9);
            self.mul_small_add(10u32.pow(step), 0);
            k -= step;
        }
        self.trim();
        self
    }

    /// `self / 10^k` rounded down, and whether anything was lost.
    fn div_pow10(mut self, mut k: u32) -> (Big, bool) {
        let mut lost = false;
        while k > 0 {
            let step = k.min(9);
            let d = u64::from(10u32.pow(step));
            let mut rem = 0u64;
            for l in self.0.iter_mut().rev() {
                let v = (rem << 32) | u64::from(*l);
                *l = (v / d) as u32;
                rem = v % d;
            }
            lost |= rem != 0;
            self.trim();
            k -= step;
        }
        (self, lost)
    }

    fn shl(&self, s: u32) -> Big {
        if self.is_zero() {
            return Big::default();
        }
        let (words, bits) = ((s / 32) as usize, s % 32);
        let mut out = vec![0u32; words];
        let mut carry = 0u32;
        for &l in &self.0 {
            if bits == 0 {
                out.push(l);
            } else {
                out.push((l << bits) | carry);
                carry = l >> (32 - bits);
            }
        }
        if carry > 0 {
            out.push(carry);
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    /// `self >> s`, with the highest dropped bit and whether any lower dropped bit is set.
    fn shr_round_bits(&self, s: u32) -> (Big, bool, bool) {
        let s64 = u64::from(s);
        let half = s > 0 && self.bit(s64 - 1);
        let rest = s > 1 && (0..s64 - 1).any(|i| self.bit(i));
        let (words, bits) = ((s / 32) as usize, s % 32);
        if words >= self.0.len() {
            return (Big::default(), half, rest);
        }
        let src = &self.0[words..];
        let mut out = Vec::with_capacity(src.len());
        for (i, &l) in src.iter().enumerate() {
            let next = src.get(i + 1).copied().unwrap_or(0);
            out.push(if bits == 0 {
                l
            } else {
                (l >> bits) | (next << (32 - bits))
            });
        }
        let mut b = Big(out);
        b.trim();
        (b, half, rest)
    }

    fn add(&self, o: &Big) -> Big {
        let n = self.0.len().max(o.0.len());
        let mut out = Vec::with_capacity(n + 1);
        let mut carry = 0u64;
        for i in 0..n {
            let v = u64::from(self.0.get(i).copied().unwrap_or(0))
                + u64::from(o.0.get(i).copied().unwrap_or(0))
                + carry;
            out.push(v as u32);
            carry = v >> 32;
        }
        if carry > 0 {
            out.push(carry as u32);
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    /// `self - o`, `o <= self`.
    fn sub(&self, o: &Big) -> Big {
        let mut out = Vec::with_capacity(self.0.len());
        let mut borrow = 0i64;
        for i in 0..self.0.len() {
            let mut v = i64::from(self.0[i]) - i64::from(o.0.get(i).copied().unwrap_or(0)) - borrow;
            borrow = 0;
            if v < 0 {
                v += 1 << 32;
                borrow = 1;
            }
            out.push(v as u32);
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    fn cmp(&self, o: &Big) -> std::cmp::Ordering {
        self.0
            .len()
            .cmp(&o.0.len())
            .then_with(|| self.0.iter().rev().cmp(o.0.iter().rev()))
    }

    fn to_decimal(&self) -> String {
        let mut n = self.clone();
        let mut chunks = Vec::new();
        while !n.is_zero() {
            let mut rem = 0u64;
            for l in n.0.iter_mut().rev() {
                let v = (rem << 32) | u64::from(*l);
                *l = (v / 1_000_000_000) as u32;
                rem = v % 1_000_000_000;
            }
            n.trim();
            chunks.push(rem as u32);
        }
        let mut s = String::new();
        for (i, c) in chunks.iter().rev().enumerate() {
            if i == 0 {
                s.push_str(&c.to_string());
            } else {
                s.push_str(&format!("{c:09}"));
            }
        }
        if s.is_empty() { "0".into() } else { s }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incr(a: &str, b: &str) -> String {
        let a = parse(a.as_bytes()).expect("a");
        let b = parse(b.as_bytes()).expect("b");
        (a + b).to_human_string()
    }

    #[test]
    fn matches_redis_outputs() {
        assert_eq!(incr("0.1", "0.1"), "0.2");
        assert_eq!(incr("0.2", "0.1"), "0.3");
        assert_eq!(incr("10.5", "1.1"), "11.6");
        assert_eq!(incr("0", "3.0e3"), "3000");
        assert_eq!(incr("0", "-0.0"), "0");
        assert_eq!(
            incr("0", "1.23456789012345678901234"),
            "1.23456789012345679"
        );
        assert_eq!(incr("0", "12345678901234567890.5"), "12345678901234567890");
        assert_eq!(incr("0", "0.00000000000000001"), "0.00000000000000001");
        assert_eq!(incr("0", "0.000000000000000015"), "0.00000000000000002");
        assert_eq!(incr("0", "0.000000000000000005"), "0");
        assert_eq!(incr("0", "0.000000000000000025"), "0.00000000000000002");
        assert_eq!(incr("0", "5e-324"), "0");
        assert_eq!(incr("9223372036854775807", "1"), "9223372036854775808");
        assert_eq!(incr("9223372036854775808", "0.5"), "9223372036854775808");
        assert_eq!(incr("0", "0x1p-3"), "0.125");
        assert_eq!(incr("0", ".5"), "0.5");
        assert_eq!(incr("0", "5."), "5");
        assert_eq!(incr("0", "+3"), "3");
        assert_eq!(incr("1.5", "-1.5"), "0");
        assert_eq!(incr("-2", "0.5"), "-1.5");
        let big = incr("0", "1e400");
        assert!(big.starts_with("10000000000000000000281880683947586514586453433629052038625910693539685534008629862039363994848324160522094053927317616200295822777259255734023828976593340661017797447434546173917862448116674971723778943824391593338047470675026246684401359237513603830343735485505244955964979021825038280091068414947402456898653040951017512658092615827588920183472511643316591362664138176309734806343732497430221946880"));
        assert_eq!(big.len(), 401);
    }

    #[test]
    fn doubles_widen_exactly() {
        let human = |v: f64| LongDouble::from(v).to_human_string();
        assert_eq!(human(13.361389338970184), "13.36138933897018433");
        assert_eq!(human(-0.5), "-0.5");
        assert_eq!(human(0.0), "0");
        assert_eq!(human(f64::NEG_INFINITY), "-inf");
        assert_eq!(human(5e-324), "0");
    }

    #[test]
    fn rejects_what_string2ld_rejects() {
        for bad in [
            "", " 1", "1 ", "abc", "nan", "1e", "1e+", ".", "-", "0x", "0x1p", "1_0", "1e-5000",
            "1e4933", "infin",
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(parse(b"inf"), Some(LongDouble::Inf { neg: false }));
        assert_eq!(parse(b"-Infinity"), Some(LongDouble::Inf { neg: true }));
        assert!(parse(b"0.000").is_some());
        assert!(parse(b"-1e4000").is_some());
        assert!(parse(b"1e-4940").is_some(), "subnormals are fine");
    }
}
