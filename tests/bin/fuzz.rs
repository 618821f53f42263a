//! The long fuzz run (`scripts/bench.sh fuzz [cases] [seed]`): mutations of real payloads and requests
//! through every parser input reaches (see `wahook_tests::mutate`). Prints the cases run, the crashes
//! and the rate; writes the first crashing input to `target/fuzz-crash.json` and exits 1 if any.

use std::time::Instant;

use wahook_tests::mutate::{run, Corpus};

fn main() {
    let mut args = std::env::args().skip(1);
    let cases: u64 = args
        .next()
        .map(|a| {
            a.replace('_', "")
                .parse()
                .expect("cases: a number, e.g. 1000000")
        })
        .unwrap_or(1_000_000);
    let seed: u64 = args
        .next()
        .map(|a| a.parse().expect("seed: a number"))
        .unwrap_or(0x5EED);
    // Panics are counted, not printed: the planner's own net logs nothing here (no subscriber).
    std::panic::set_hook(Box::new(|_| {}));
    let corpus = Corpus::load();
    let started = Instant::now();
    // In chunks, so a long run shows progress.
    let chunk = 100_000.min(cases.max(1));
    let (mut done, mut crashes, mut first) = (0u64, 0u64, None);
    while done < cases {
        let n = chunk.min(cases - done);
        let r = run(&corpus, n, seed.wrapping_add(done));
        done += r.cases;
        crashes += r.crashes;
        if first.is_none() {
            first = r.first_crash;
        }
        eprintln!(
            "fuzz: {done}/{cases} cases, {crashes} crashes, {:.0} cases/s",
            done as f64 / started.elapsed().as_secs_f64()
        );
    }
    println!(
        "fuzz: {done} cases from seed {seed}, {crashes} crashes, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if let Some(input) = first {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/fuzz-crash.json");
        std::fs::write(path, &input).expect("write the crashing input");
        println!("fuzz: first crashing input written to {path}");
        std::process::exit(1);
    }
}
