//! Placeholder until the C ABI benchmark lands.
fn main() {}
