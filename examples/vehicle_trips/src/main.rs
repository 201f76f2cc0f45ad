//! Vehicle trips.
fn main() {}
