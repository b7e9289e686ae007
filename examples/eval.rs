//! Runs the detector evaluation: `cargo run --release --example eval -- ../shared/eval`.
use std::path::PathBuf;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("../shared/eval"), PathBuf::from);
    match parapet::eval::run(&dir) {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("eval failed: {e}");
            std::process::exit(1);
        }
    }
}
