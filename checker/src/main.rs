//! `checker`: see the library documentation.

fn main() {}
