//! The case count of this crate's property tests.

/// `n` cases, or `PROPTEST_CASES` when set (the long run). The defaults
/// are small so that `cargo test` stays quick.
pub fn cases(n: u32) -> proptest::prelude::ProptestConfig {
    let n = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(n);
    proptest::prelude::ProptestConfig::with_cases(n)
}
