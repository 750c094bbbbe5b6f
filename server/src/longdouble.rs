//! x87 80-bit `long double` arithmetic in software, for INCRBYFLOAT and HINCRBYFLOAT.
//!
//! Redis computes these increments in `long double` (64-bit mantissa on x86-64) and prints
//! the result with `%.17Lf`, so `0.1 + 0.2` is stored as `0.3` and `1e400` is a valid
//! result. Reproducing the bytes needs the same precision, the same round-to-nearest-even
//! steps (strtold, addition, printf) and the same 15-bit exponent range; `f64` gets all three
//! wrong. This module does only that: parse, add, format. It must not be used for scores or
//! replies that Redis computes in `double`.

use std::cmp::Ordering;

/// Largest binary exponent of a finite value's leading bit (`LDBL_MAX_EXP - 1`).
const MAX_EXP: i64 = 16383;
/// Smallest binary exponent of a normal value's leading bit (`LDBL_MIN_EXP - 1`).
const MIN_EXP: i64 = -16382;
/// Longest string `string2ld` accepts (`MAX_LONG_DOUBLE_CHARS`, NUL excluded).
const MAX_CHARS: usize = 5 * 1024 - 1;

/// Why a string is not a finite long double.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    Invalid,
    Infinite,
}

/// Why an increment failed, in the order Redis checks: the stored value, the increment,
/// then the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncrError {
    ValueNotFloat,
    IncrementNotFloat,
    NotFinite,
}

/// INCRBYFLOAT / HINCRBYFLOAT: `current + increment` in long double, as the text Redis
/// stores and replies.
///
/// # Errors
/// See [`IncrError`].
pub fn incr_by_float(current: &[u8], increment: &[u8]) -> Result<String, IncrError> {
    let cur = LongDouble::parse(current);
    if cur == Err(ParseError::Invalid) {
        return Err(IncrError::ValueNotFloat);
    }
    let by = LongDouble::parse(increment);
    if by == Err(ParseError::Invalid) {
        return Err(IncrError::IncrementNotFloat);
    }
    let (Ok(cur), Ok(by)) = (cur, by) else {
        return Err(IncrError::NotFinite);
    };
    cur.checked_add(by)
        .map(LongDouble::to_human_string)
        .ok_or(IncrError::NotFinite)
}

/// A finite long double: `(-1)^neg * mant * 2^exp`, `mant` normalised to 64 significant bits
/// (top bit set) unless the value is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongDouble {
    neg: bool,
    mant: u64,
    exp: i64,
}

impl LongDouble {
    pub const ZERO: LongDouble = LongDouble {
        neg: false,
        mant: 0,
        exp: 0,
    };

    /// Parses like Redis's `string2ld`: strtold syntax (decimal or hex, optional sign and
    /// exponent, `inf`/`infinity`), no leading space, nothing after the number, no NaN, and
    /// no overflow or underflow to zero.
    ///
    /// # Errors
    /// [`ParseError::Invalid`] where Redis says "not a valid float";
    /// [`ParseError::Infinite`] for a valid infinity, which no sum can make finite.
    pub fn parse(s: &[u8]) -> Result<LongDouble, ParseError> {
        if s.is_empty() || s.len() > MAX_CHARS {
            return Err(ParseError::Invalid);
        }
        let (neg, body) = match s[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
            return Err(ParseError::Infinite);
        }
        let parsed = if body.len() > 2 && body[0] == b'0' && (body[1] | 0x20) == b'x' {
            parse_hex(&body[2..])
        } else {
            parse_dec(body)
        };
        let (digits, e2, e10) = parsed.ok_or(ParseError::Invalid)?;
        from_parts(neg, &digits, e2, e10).ok_or(ParseError::Invalid)
    }

    /// The sum, rounded to nearest-even at 64 bits; `None` when it overflows to infinity.
    pub fn checked_add(self, other: LongDouble) -> Option<LongDouble> {
        if self.mant == 0 {
            return Some(other.normalise_zero());
        }
        if other.mant == 0 {
            return Some(self);
        }
        let (a, b) = if (self.exp, self.mant) >= (other.exp, other.mant) {
            (self, other)
        } else {
            (other, self)
        };
        // 62 guard bits below the mantissa; lost bits are jammed into the lowest one.
        let big_a = u128::from(a.mant) << 62;
        let d = (a.exp - b.exp) as u128;
        let b_wide = u128::from(b.mant) << 62;
        let big_b = if d >= 127 {
            u128::from(b.mant != 0)
        } else {
            let shifted = b_wide >> d;
            shifted | u128::from(shifted << d != b_wide)
        };
        let (sum, neg) = if a.neg == b.neg {
            (big_a + big_b, a.neg)
        } else if big_a >= big_b {
            (big_a - big_b, a.neg)
        } else {
            (big_b - big_a, b.neg)
        };
        if sum == 0 {
            return Some(LongDouble::ZERO);
        }
        round(neg, sum, a.exp - 62)
    }

    fn normalise_zero(self) -> LongDouble {
        if self.mant == 0 {
            LongDouble::ZERO
        } else {
            self
        }
    }

    /// `%.17Lf` with trailing zeros (and a trailing dot) removed, and `-0` printed as `0`:
    /// Redis's `ld2string(..., LD_STR_HUMAN)`.
    pub fn to_human_string(self) -> String {
        let scaled = {
            let mut n = Big::from_u64(self.mant);
            n.mul_pow10(17);
            if self.exp >= 0 {
                n.shl(self.exp as u64);
                n
            } else {
                let shift = self.exp.unsigned_abs();
                let (mut q, rem_cmp_half, odd) = n.shr_round_info(shift);
                if rem_cmp_half == Ordering::Greater || (rem_cmp_half == Ordering::Equal && odd) {
                    q.add_small(1);
                }
                q
            }
        };
        let mut digits = scaled.to_decimal();
        if digits.len() <= 17 {
            digits = format!("{}{digits}", "0".repeat(18 - digits.len()));
        }
        let (int, frac) = digits.split_at(digits.len() - 17);
        let frac = frac.trim_end_matches('0');
        let mut out = String::with_capacity(digits.len() + 2);
        if self.neg {
            out.push('-');
        }
        out.push_str(int);
        if !frac.is_empty() {
            out.push('.');
            out.push_str(frac);
        }
        if out == "-0" { "0".into() } else { out }
    }
}

/// Rounds `sum * 2^exp` to a 64-bit mantissa (nearest, ties to even).
fn round(neg: bool, sum: u128, exp: i64) -> Option<LongDouble> {
    let top = 127 - i64::from(sum.leading_zeros());
    let (mut mant, mut e) = if top > 63 {
        let shift = (top - 63) as u32;
        let m = (sum >> shift) as u64;
        let rem = sum & ((1u128 << shift) - 1);
        let half = 1u128 << (shift - 1);
        let up = rem > half || (rem == half && m & 1 == 1);
        let (m, carry) = m.overflowing_add(u64::from(up));
        if carry {
            (1u64 << 63, exp + i64::from(shift) + 1)
        } else {
            (m, exp + i64::from(shift))
        }
    } else {
        let shift = (63 - top) as u32;
        ((sum << shift) as u64, exp - i64::from(shift))
    };
    if e + 63 > MAX_EXP {
        return None;
    }
    if e + 63 < MIN_EXP {
        // Below the normal range: x87 would go subnormal; such sums do not occur in practice
        // and flushing keeps the representation simple.
        mant = 0;
        e = 0;
    }
    Some(LongDouble {
        neg: neg && mant != 0,
        mant,
        exp: e,
    })
}

/// Decimal strtold syntax: digits with an optional dot (at least one digit), then an
/// optional `e[+-]digits`. Returns the digits as an integer, and the powers of 2 and 10.
fn parse_dec(s: &[u8]) -> Option<(Big, i64, i64)> {
    let mut n = Big::from_u64(0);
    let mut e10: i64 = 0;
    let mut seen_digit = false;
    let mut seen_dot = false;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            c @ b'0'..=b'9' => {
                n.mul_small(10);
                n.add_small(u32::from(c - b'0'));
                if seen_dot {
                    e10 -= 1;
                }
                seen_digit = true;
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => break,
        }
        i += 1;
    }
    if !seen_digit {
        return None;
    }
    if i < s.len() {
        if s[i] | 0x20 != b'e' {
            return None;
        }
        e10 = e10.saturating_add(parse_exp(&s[i + 1..])?);
    }
    Some((n, 0, e10))
}

/// Hex strtold syntax after `0x`: hex digits with an optional dot, then optional `p[+-]dec`.
fn parse_hex(s: &[u8]) -> Option<(Big, i64, i64)> {
    let mut n = Big::from_u64(0);
    let mut e2: i64 = 0;
    let mut seen_digit = false;
    let mut seen_dot = false;
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if let Some(v) = char::from(c).to_digit(16) {
            n.mul_small(16);
            n.add_small(v);
            if seen_dot {
                e2 -= 4;
            }
            seen_digit = true;
        } else if c == b'.' && !seen_dot {
            seen_dot = true;
        } else {
            break;
        }
        i += 1;
    }
    if !seen_digit {
        return None;
    }
    if i < s.len() {
        if s[i] | 0x20 != b'p' {
            return None;
        }
        e2 = e2.saturating_add(parse_exp(&s[i + 1..])?);
    }
    Some((n, e2, 0))
}

/// An exponent: optional sign, at least one digit, nothing after. Huge values saturate
/// (they overflow or underflow anyway).
fn parse_exp(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = digits.iter().fold(0i64, |acc, d| {
        acc.saturating_mul(10).saturating_add(i64::from(d - b'0'))
    });
    Some(if neg { -v } else { v })
}

/// `digits * 2^e2 * 10^e10`, correctly rounded; `None` on overflow or underflow to zero.
fn from_parts(neg: bool, digits: &Big, e2: i64, e10: i64) -> Option<LongDouble> {
    if digits.is_zero() {
        return Some(LongDouble::ZERO);
    }
    // Reject exponents far outside the range before building huge powers of ten.
    // In i128 so that saturated exponents cannot overflow.
    let approx = i128::from(digits.bit_len())
        + i128::from(e2)
        + (e10 as f64 * std::f64::consts::LOG2_10) as i128;
    if !(i128::from(MIN_EXP - 70)..=i128::from(MAX_EXP + 2)).contains(&approx) {
        return None;
    }
    let mut num = digits.clone();
    let mut den = Big::from_u64(1);
    if e10 >= 0 {
        num.mul_pow10(e10 as u64);
    } else {
        den.mul_pow10(e10.unsigned_abs());
    }
    // Scale so the quotient has 66 or 67 bits: 64 for the mantissa, the rest for rounding.
    let s = 66 + den.bit_len() as i64 - num.bit_len() as i64;
    if s >= 0 {
        num.shl(s as u64);
    } else {
        den.shl(s.unsigned_abs());
    }
    let (q, exact) = num.div_small_quotient(&den, 68);
    let sticky = u128::from(!exact);
    // One more bit of room, so the jammed sticky bit sits below the rounding position.
    round(neg, (q << 1) | sticky, e2 - s - 1)
}

/// A minimal arbitrary-precision unsigned integer (little-endian 32-bit limbs).
#[derive(Debug, Clone)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(v: u64) -> Big {
        let mut b = Big(vec![v as u32, (v >> 32) as u32]);
        b.trim();
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

    fn bit_len(&self) -> u64 {
        self.0.last().map_or(0, |top| {
            (self.0.len() as u64 - 1) * 32 + u64::from(32 - top.leading_zeros())
        })
    }

    fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for limb in &mut self.0 {
            let v = u64::from(*limb) * u64::from(m) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    fn add_small(&mut self, a: u32) {
        let mut carry = u64::from(a);
        for limb in &mut self.0 {
            if carry == 0 {
                return;
            }
            let v = u64::from(*limb) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    fn mul_pow10(&mut self, mut n: u64) {
        while n >= 9 {
            self.mul_small(1_000_000_000);
            n -= 9;
        }
        self.mul_small(10u32.pow(n as u32));
    }

    fn shl(&mut self, bits: u64) {
        if self.is_zero() {
            return;
        }
        let limbs = (bits / 32) as usize;
        let rest = (bits % 32) as u32;
        if rest > 0 {
            let mut carry = 0u32;
            for limb in &mut self.0 {
                let v = (*limb << rest) | carry;
                carry = *limb >> (32 - rest);
                *limb = v;
            }
            if carry > 0 {
                self.0.push(carry);
            }
        }
        self.0.splice(0..0, std::iter::repeat_n(0, limbs));
    }

    fn bit(&self, i: u64) -> bool {
        self.0
            .get((i / 32) as usize)
            .is_some_and(|l| l >> (i % 32) & 1 == 1)
    }

    /// `self >> shift`, how the dropped bits compare with one half, and the quotient's parity.
    fn shr_round_info(&self, shift: u64) -> (Big, Ordering, bool) {
        let mut q = Big(Vec::new());
        let len = self.bit_len();
        if shift < len {
            let mut limbs = Vec::with_capacity(((len - shift) / 32 + 1) as usize);
            let mut i = shift;
            while i < len {
                let mut limb = 0u32;
                for b in 0..32 {
                    if i + b < len && self.bit(i + b) {
                        limb |= 1 << b;
                    }
                }
                limbs.push(limb);
                i += 32;
            }
            q = Big(limbs);
            q.trim();
        }
        let half = if shift == 0 || !self.bit(shift - 1) {
            Ordering::Less
        } else if (0..shift - 1).any(|i| self.bit(i)) {
            Ordering::Greater
        } else {
            Ordering::Equal
        };
        let odd = q.0.first().is_some_and(|l| l & 1 == 1);
        (q, half, odd)
    }

    fn cmp(&self, other: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }

    fn sub_assign(&mut self, other: &Big) {
        let mut borrow = 0i64;
        for (i, limb) in self.0.iter_mut().enumerate() {
            let o = i64::from(other.0.get(i).copied().unwrap_or(0));
            let mut v = i64::from(*limb) - o - borrow;
            borrow = i64::from(v < 0);
            if v < 0 {
                v += 1 << 32;
            }
            *limb = v as u32;
        }
        self.trim();
    }

    /// The quotient `self / den` when it is known to be below `2^bits`, and whether the
    /// division was exact.
    fn div_small_quotient(mut self, den: &Big, bits: u32) -> (u128, bool) {
        let mut q = 0u128;
        for bit in (0..bits).rev() {
            let mut t = den.clone();
            t.shl(u64::from(bit));
            if self.cmp(&t) != Ordering::Less {
                self.sub_assign(&t);
                q |= 1 << bit;
            }
        }
        (q, self.is_zero())
    }

    fn to_decimal(&self) -> String {
        if self.is_zero() {
            return "0".into();
        }
        let mut limbs = self.0.clone();
        let mut chunks = Vec::new();
        while !limbs.is_empty() {
            let mut rem = 0u64;
            for limb in limbs.iter_mut().rev() {
                let v = (rem << 32) | u64::from(*limb);
                *limb = (v / 1_000_000_000) as u32;
                rem = v % 1_000_000_000;
            }
            while limbs.last() == Some(&0) {
                limbs.pop();
            }
            chunks.push(rem as u32);
        }
        let mut out = String::new();
        for (i, c) in chunks.iter().rev().enumerate() {
            if i == 0 {
                out.push_str(&c.to_string());
            } else {
                out.push_str(&format!("{c:09}"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{IncrError, LongDouble, ParseError, incr_by_float};

    fn incr(a: &str, b: &str) -> Option<String> {
        incr_by_float(a.as_bytes(), b.as_bytes()).ok()
    }

    /// Expected values are what Redis 7.0 on x86-64 replies to INCRBYFLOAT.
    #[test]
    fn matches_redis_incrbyfloat() {
        assert_eq!(incr("0", "1.5").as_deref(), Some("1.5"));
        assert_eq!(
            incr("1000", "1.0e-2").as_deref(),
            Some("1000.01000000000000001")
        );
        assert_eq!(incr("0.1", "0.2").as_deref(), Some("0.3"));
        assert_eq!(incr("0.3", "-0.3").as_deref(), Some("0"));
        assert_eq!(incr("0", "-0.0").as_deref(), Some("0"));
        assert_eq!(
            incr("0", "1.23456789012345678").as_deref(),
            Some("1.23456789012345678")
        );
        assert_eq!(incr("0", "0x10").as_deref(), Some("16"));
        assert_eq!(incr("10.50", "0.1").as_deref(), Some("10.6"));
        assert_eq!(incr("5.0e3", "200").as_deref(), Some("5200"));
        assert_eq!(incr("-1", "1").as_deref(), Some("0"));
        let big = incr("0", "1e400").expect("finite in long double");
        assert_eq!(big.len(), 401);
        assert!(big.starts_with("10000000000000000000281880683947586514586453"));
        assert_eq!(
            incr("1.7976931348623157e308", "1.7976931348623157e308")
                .expect("finite")
                .len(),
            309
        );
    }

    #[test]
    fn parse_follows_string2ld() {
        for bad in [
            "1.5e-9223372036854775808",
            "1e9223372036854775807",
            "0x1.8p-9223372036854775808",
            "1e99999999999999999999999",
            "",
            " 1",
            "1 ",
            "abc",
            "nan",
            "NaN",
            ".",
            "1e",
            "1e+",
            "0x",
            "1_000",
            "1e99999",
            "1e-99999",
        ] {
            assert_eq!(
                LongDouble::parse(bad.as_bytes()),
                Err(ParseError::Invalid),
                "{bad:?}"
            );
        }
        for inf in ["inf", "-INF", "+Infinity"] {
            assert_eq!(LongDouble::parse(inf.as_bytes()), Err(ParseError::Infinite));
        }
        for good in [".5", "5.", "+1", "-0", "0e99999", "0x1p-2", "1E3"] {
            assert!(LongDouble::parse(good.as_bytes()).is_ok(), "{good:?}");
        }
        let max = LongDouble::parse(b"1e4932").expect("below LDBL_MAX");
        assert!(max.checked_add(max).is_none(), "overflow is refused");
        assert_eq!(incr_by_float(b"abc", b"x"), Err(IncrError::ValueNotFloat));
        assert_eq!(incr_by_float(b"1", b"x"), Err(IncrError::IncrementNotFloat));
        assert_eq!(incr_by_float(b"1", b"inf"), Err(IncrError::NotFinite));
    }
}
