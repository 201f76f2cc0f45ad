//! What `catch_unwind` around the processing of one record costs when nothing panics: the
//! stream task's guard (`streamkit/src/runtime/task.rs`, `Task::process`), reproduced with
//! the same shape — a record handed through `Rc<RefCell<dyn Source>>` to a source that
//! decodes it and forwards it down a chain of dynamically dispatched nodes to a collector
//! that copies its bytes, as a passthrough does — and timed with and without the guard.
//!
//! Standalone (no dependency; the guard is a property of the compiler, not of streamkit):
//!
//! ```text
//! rustc -C opt-level=3 --edition 2024 bench/micro/catch_unwind.rs -o /tmp/catch_unwind
//! /tmp/catch_unwind
//! ```

use std::cell::RefCell;
use std::hint::black_box;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::Instant;

type Result<T> = std::result::Result<T, String>;

trait Node {
    fn receive(&mut self, key: &str, value: &str) -> Result<()>;
}

trait Source {
    fn receive_raw(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
}

/// A map_values-like node: forwards to its child.
struct Forward(Rc<RefCell<dyn Node>>);

impl Node for Forward {
    fn receive(&mut self, key: &str, value: &str) -> Result<()> {
        self.0.borrow_mut().receive(key, value)
    }
}

/// A sink: encodes into a buffer, as the producer's queue copies the bytes.
struct Sink {
    out: Vec<u8>,
    sent: u64,
}

impl Node for Sink {
    fn receive(&mut self, key: &str, value: &str) -> Result<()> {
        self.out.clear();
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(value.as_bytes());
        if self.out.len() > 1 << 20 {
            return Err("too large".into());
        }
        self.sent += 1;
        Ok(())
    }
}

struct Decode(Rc<RefCell<dyn Node>>);

impl Source for Decode {
    fn receive_raw(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let key = std::str::from_utf8(key).map_err(|e| e.to_string())?;
        let value = std::str::from_utf8(value).map_err(|e| e.to_string())?;
        if value == "boom" {
            panic!("the closure cannot take {value:?}");
        }
        self.0.borrow_mut().receive(key, value)
    }
}

struct Task {
    source: Rc<RefCell<dyn Source>>,
    processed: u64,
}

impl Task {
    #[inline(never)]
    fn process_plain(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let r = self.source.borrow_mut().receive_raw(key, value);
        if let Err(e) = r {
            return Err(e);
        }
        self.processed += 1;
        Ok(())
    }

    #[inline(never)]
    fn process_guarded(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let source = &self.source;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            source.borrow_mut().receive_raw(key, value)
        }));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("panicked".into()),
        }
        self.processed += 1;
        Ok(())
    }
}

fn task() -> Task {
    let sink: Rc<RefCell<dyn Node>> = Rc::new(RefCell::new(Sink {
        out: Vec::new(),
        sent: 0,
    }));
    let map: Rc<RefCell<dyn Node>> = Rc::new(RefCell::new(Forward(sink)));
    Task {
        source: Rc::new(RefCell::new(Decode(map))),
        processed: 0,
    }
}

fn main() {
    const RECORDS: usize = 20_000_000;
    const ROUNDS: usize = 9;
    let records: Vec<(Vec<u8>, Vec<u8>)> = (0..1024)
        .map(|i| {
            (
                format!("key-{i}").into_bytes(),
                format!("{{\"station\":{i},\"riders\":{}}}", i * 7).into_bytes(),
            )
        })
        .collect();
    let mut plain = Vec::new();
    let mut guarded = Vec::new();
    for round in 0..ROUNDS {
        // Alternate the order so that neither variant always runs on a warmer machine.
        for variant in if round % 2 == 0 { [0, 1] } else { [1, 0] } {
            let mut t = task();
            let started = Instant::now();
            for i in 0..RECORDS {
                let (k, v) = &records[i & 1023];
                let r = if variant == 0 {
                    t.process_plain(black_box(k), black_box(v))
                } else {
                    t.process_guarded(black_box(k), black_box(v))
                };
                black_box(r).unwrap();
            }
            let ns = started.elapsed().as_nanos() as f64 / RECORDS as f64;
            assert_eq!(t.processed, RECORDS as u64);
            if variant == 0 {
                plain.push(ns);
            } else {
                guarded.push(ns);
            }
        }
    }
    plain.sort_by(f64::total_cmp);
    guarded.sort_by(f64::total_cmp);
    let (p, g) = (plain[ROUNDS / 2], guarded[ROUNDS / 2]);
    println!("records per round: {RECORDS}, rounds: {ROUNDS} (medians)");
    println!("without catch_unwind: {p:.2} ns/record  (all: {plain:.2?})");
    println!("with catch_unwind:    {g:.2} ns/record  (all: {guarded:.2?})");
    println!("difference:           {:+.2} ns/record ({:+.1} %)", g - p, (g - p) / p * 100.0);
}
