//! Random text for secrets the operator generates: the password and the renamed commands'
//! secret names. Both draw here so neither owner imports the other's module to reach it.
//!
//! No network; draws from the operating system's CSPRNG-seeded generator.

use rand::Rng;
use rand::distr::Alphanumeric;

/// `len` random letters and digits from the operating system's CSPRNG-seeded generator.
pub fn random_alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}
