//! `echo-server`: see the library documentation.

fn main() {}
