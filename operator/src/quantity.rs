//! Byte quantities as Kubernetes writes them (`20Gi`, `512Mi`, `1e9`, `268435456`).
//!
//! The CRD accepts sizes as int-or-string quantities; the policy works in bytes. This module
//! parses and formats them. Pure: no network, no clock.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The regular expression the CRD schema uses for byte quantities: a non-negative decimal
/// number with an optional binary (`Ki`..`Ei`), decimal (`k`..`E`) or exponent suffix.
///
/// Negative numbers and milli units are excluded on purpose: neither makes sense for bytes.
pub const BYTE_QUANTITY_PATTERN: &str =
    r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$";

const KIB: u64 = 1024;
/// One mebibyte.
pub const MIB: u64 = KIB * 1024;
/// One gibibyte.
pub const GIB: u64 = MIB * 1024;
/// One tebibyte.
pub const TIB: u64 = GIB * 1024;

/// Why a quantity could not be read as a byte count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a byte quantity ({why}); use forms like 512Mi, 20Gi or 1000000")]
pub struct QuantityError {
    value: String,
    why: &'static str,
}

/// A byte quantity as written by the user (`20Gi`, `268435456`, ...).
///
/// It keeps the user's spelling so status and events echo what was written, and reads both
/// YAML integers and strings because the apiserver stores int-or-string values as given.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ByteQuantity(String);

impl ByteQuantity {
    /// Wraps a spelled quantity without checking it (checking happens in [`Self::bytes`]).
    pub fn new(spelled: impl Into<String>) -> Self {
        Self(spelled.into())
    }

    /// The quantity as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number of bytes, rounded up to a whole byte.
    ///
    /// # Errors
    /// When the text is not a non-negative decimal quantity or overflows 64 bits.
    pub fn bytes(&self) -> Result<u64, QuantityError> {
        parse_bytes(&self.0)
    }
}

impl fmt::Display for ByteQuantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for ByteQuantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ByteQuantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum IntOrString {
            Int(u64),
            Str(String),
        }
        Ok(match IntOrString::deserialize(deserializer)? {
            IntOrString::Int(n) => Self(n.to_string()),
            IntOrString::Str(s) => Self(s),
        })
    }
}

impl JsonSchema for ByteQuantity {
    fn schema_name() -> Cow<'static, str> {
        "ByteQuantity".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "x-kubernetes-int-or-string": true,
            "pattern": BYTE_QUANTITY_PATTERN,
            "x-kubernetes-validations": [{
                "rule": "!string(self).startsWith('-')",
                "message": "a size cannot be negative",
            }],
        })
    }
}

/// Parses a Kubernetes quantity into bytes, rounding a fractional result up.
///
/// # Errors
/// When `text` is empty, negative, uses an unknown suffix or overflows 64 bits.
pub fn parse_bytes(text: &str) -> Result<u64, QuantityError> {
    let err = |why| QuantityError {
        value: text.to_owned(),
        why,
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() || number == "." {
        return Err(err("no number"));
    }
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if frac.contains('.') {
        return Err(err("two decimal points"));
    }
    let (base, power): (u64, u32) = match suffix {
        "" => (1, 0),
        "Ki" => (1024, 1),
        "Mi" => (1024, 2),
        "Gi" => (1024, 3),
        "Ti" => (1024, 4),
        "Pi" => (1024, 5),
        "Ei" => (1024, 6),
        "k" => (1000, 1),
        "M" => (1000, 2),
        "G" => (1000, 3),
        "T" => (1000, 4),
        "P" => (1000, 5),
        "E" => (1000, 6),
        s if s.starts_with(['e', 'E']) => {
            let exp: u32 = s[1..].parse().map_err(|_| err("bad exponent"))?;
            (10, exp)
        }
        _ => return Err(err("unknown suffix")),
    };
    let multiplier = u128::from(base)
        .checked_pow(power)
        .ok_or_else(|| err("too large"))?;
    // Fixed-point: value = (whole * 10^f + frac) * multiplier / 10^f, rounded up.
    let frac = frac.get(..frac.len().min(18)).unwrap_or(frac);
    let scale = 10u128.pow(u32::try_from(frac.len()).map_err(|_| err("too precise"))?);
    let digits = format!("{whole}{frac}");
    let mantissa: u128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| err("too large"))?
    };
    let scaled = mantissa
        .checked_mul(multiplier)
        .ok_or_else(|| err("too large"))?;
    let bytes = scaled.div_ceil(scale);
    u64::try_from(bytes).map_err(|_| err("too large"))
}

/// Bytes to one decimal in the largest binary unit they reach (`12.3Mi`), for progress
/// shown to humans.
pub fn approx_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [("Ti", TIB), ("Gi", GIB), ("Mi", MIB), ("Ki", KIB)];
    match UNITS.iter().find(|(_, unit)| bytes >= *unit) {
        #[allow(clippy::cast_precision_loss)]
        Some((suffix, unit)) => format!("{:.1}{suffix}", bytes as f64 / *unit as f64),
        None => format!("{bytes}B"),
    }
}

/// Formats bytes with the largest binary suffix that divides them exactly (`20Gi`, `300Mi`,
/// `1536`), the way `kubectl` users write sizes.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [("Ti", TIB), ("Gi", GIB), ("Mi", MIB), ("Ki", KIB)];
    if bytes == 0 {
        return "0".to_owned();
    }
    for (suffix, unit) in UNITS {
        if bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_users_write() {
        let cases = [
            ("0", 0),
            ("1536", 1536),
            ("1Ki", 1024),
            ("512Mi", 512 * MIB),
            ("20Gi", 20 * GIB),
            ("1.5Gi", 1536 * MIB),
            ("2Ti", 2 * TIB),
            ("1k", 1000),
            ("20G", 20_000_000_000),
            ("1e9", 1_000_000_000),
            ("0.5", 1),
            (".5Ki", 512),
        ];
        for (text, want) in cases {
            assert_eq!(parse_bytes(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_byte_count() {
        for text in [
            "",
            "Gi",
            "-1Gi",
            "1GB",
            "1..2",
            "1m",
            "99999999999Ei",
            "1e99",
        ] {
            let err = parse_bytes(text).expect_err(text);
            assert!(err.to_string().contains("is not a byte quantity"), "{err}");
        }
    }

    #[test]
    fn formats_with_the_largest_exact_binary_unit() {
        assert_eq!(format_bytes(0), "0");
        assert_eq!(format_bytes(20 * GIB), "20Gi");
        assert_eq!(format_bytes(300 * MIB), "300Mi");
        assert_eq!(format_bytes(1536 * MIB), "1536Mi");
        assert_eq!(format_bytes(1000), "1000");
    }

    #[test]
    fn reads_integers_and_strings() {
        let q: ByteQuantity = serde_json::from_str("268435456").expect("int");
        assert_eq!(q.bytes(), Ok(256 * MIB));
        let q: ByteQuantity = serde_json::from_str("\"256Mi\"").expect("string");
        assert_eq!(q.bytes(), Ok(256 * MIB));
        assert_eq!(serde_json::to_string(&q).expect("ser"), "\"256Mi\"");
    }
}
