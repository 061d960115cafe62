// An empty build script: without one, cargo ignores the crate's build dependencies.
fn main() {}
