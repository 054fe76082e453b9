//! A stable-Rust fuzzing kit on top of proptest, shared by the `tests/fuzz_*.rs` harnesses of
//! the workspace's crates (included with `#[path]`, so there is one copy).
//!
//! * [`fuzz`] runs one property over a strategy, counts the cases and prints the count
//!   (`fuzz <parser>: <n> cases`), scaled up under `BULWARK_THOROUGH=1`.
//! * [`Mutation`] and [`JsonMutation`] turn a *valid* encoding into a hostile one: bit flips,
//!   truncation, length fields overwritten with 2^32-1 or 2^63, inserted, removed, duplicated
//!   and swapped ranges; for JSON, values replaced by extreme ones, fields dropped, records
//!   duplicated and reordered.
//! * [`largest_allocation`] reports the largest single heap request a closure made on this
//!   thread (a counting global allocator), so a test can show that no decoder allocates by a
//!   length it read from its input.

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;

/// Whether the long runs were asked for.
pub fn thorough() -> bool {
    std::env::var("BULWARK_THOROUGH").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// How many more cases a thorough run makes than a quick one.
pub const THOROUGH_FACTOR: u32 = 100;

/// `quick` cases normally, `quick * THOROUGH_FACTOR` under `BULWARK_THOROUGH=1`.
pub fn cases(quick: u32) -> u32 {
    if thorough() {
        quick.saturating_mul(THOROUGH_FACTOR)
    } else {
        quick
    }
}

/// Run `property` on `cases(quick)` inputs drawn from `strategy`; a panic inside it is a
/// failure, shrunk to a minimal input by proptest. Prints and returns the number of cases run.
pub fn fuzz<S: Strategy>(
    parser: &str,
    quick: u32,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> u64 {
    let config = Config {
        cases: cases(quick),
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..Config::default()
    };
    let count = AtomicU64::new(0);
    ACCEPTED.with(|a| a.set(0));
    let result = TestRunner::new(config).run(&strategy, |input| {
        count.fetch_add(1, Ordering::Relaxed);
        property(input)
    });
    let n = count.load(Ordering::Relaxed);
    let accepted = ACCEPTED.with(|a| a.replace(0));
    eprintln!("fuzz {parser}: {n} cases ({accepted} accepted by the parser)");
    if let Err(e) = result {
        panic!("fuzz {parser}: {e}");
    }
    n
}

thread_local! {
    static ACCEPTED: Cell<u64> = const { Cell::new(0) };
}

/// Note that the parser accepted this case's input (the count shows how deep a run reached).
pub fn accepted() {
    ACCEPTED.with(|a| a.set(a.get() + 1));
}

/// Print a count of deterministic cases (every truncation, every overwritten field, ...).
pub fn report(parser: &str, n: u64) {
    eprintln!("fuzz {parser}: {n} cases");
}

// ---- allocation tracking ----

thread_local! {
    // `const` and free of destructors: reading it inside the allocator never allocates.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|c| {
        if size > c.get() {
            c.set(size)
        }
    });
}

/// The system allocator, noting the largest request of each thread.
pub struct Tracking;

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Run `f` and return its result with the largest single allocation it asked for on this thread.
pub fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = LARGEST.with(|c| c.replace(0));
    let out = f();
    let largest = LARGEST.with(|c| c.replace(before.max(c.get())));
    (out, largest)
}

/// What a decoder may allocate at once for `input_len` bytes of input: a small multiple (parsed
/// structures are larger than their encodings, vectors double) plus a fixed allowance. A decoder
/// that trusts a length field read from its input blows through this at once.
pub fn allocation_allowance(input_len: usize) -> usize {
    16 * input_len + (1 << 20)
}

/// Fail the case when `f` allocated more than [`allocation_allowance`] of `input_len`.
pub fn bounded_allocation<T>(
    what: &str,
    input_len: usize,
    f: impl FnOnce() -> T,
) -> Result<T, TestCaseError> {
    allocation_within(what, input_len, allocation_allowance(input_len), f)
}

/// Fail the case when `f` allocated more than `allowed` bytes at once.
pub fn allocation_within<T>(
    what: &str,
    input_len: usize,
    allowed: usize,
    f: impl FnOnce() -> T,
) -> Result<T, TestCaseError> {
    let (out, largest) = largest_allocation(f);
    if largest > allowed {
        return Err(TestCaseError::fail(format!(
            "{what}: allocated {largest} bytes at once for {input_len} bytes of input (allowed {allowed})"
        )));
    }
    Ok(out)
}

// ---- byte mutations ----

/// Values that break length and offset arithmetic.
pub const HUGE_U32: [u32; 6] = [0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_fffe, u32::MAX];
pub const HUGE_U64: [u64; 6] = [0, 1 << 31, 1 << 32, 1 << 62, 1 << 63, u64::MAX];

#[derive(Clone, Debug)]
pub enum Mutation {
    Flip {
        at: Index,
        bit: u8,
    },
    Truncate {
        at: Index,
    },
    SetU32 {
        at: Index,
        value: u32,
    },
    SetU64 {
        at: Index,
        value: u64,
    },
    Insert {
        at: Index,
        bytes: Vec<u8>,
    },
    Remove {
        at: Index,
        len: usize,
    },
    /// Copy `len` bytes from `from` to `to` (a duplicated record).
    Duplicate {
        from: Index,
        len: usize,
        to: Index,
    },
    /// Exchange two ranges of `len` bytes (reordered records).
    Swap {
        a: Index,
        b: Index,
        len: usize,
    },
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        1 => any::<Index>().prop_map(|at| Mutation::Truncate { at }),
        2 => (any::<Index>(), prop::sample::select(&HUGE_U32[..]))
            .prop_map(|(at, value)| Mutation::SetU32 { at, value }),
        1 => (any::<Index>(), any::<u32>())
            .prop_map(|(at, value)| Mutation::SetU32 { at, value }),
        2 => (any::<Index>(), prop::sample::select(&HUGE_U64[..]))
            .prop_map(|(at, value)| Mutation::SetU64 { at, value }),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => (any::<Index>(), 1usize..64).prop_map(|(at, len)| Mutation::Remove { at, len }),
        1 => (any::<Index>(), 1usize..128, any::<Index>())
            .prop_map(|(from, len, to)| Mutation::Duplicate { from, len, to }),
        1 => (any::<Index>(), any::<Index>(), 1usize..64)
            .prop_map(|(a, b, len)| Mutation::Swap { a, b, len }),
    ]
}

/// One to four mutations, applied in order.
pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..=4)
}

fn pos(at: &Index, len: usize) -> usize {
    if len == 0 { 0 } else { at.index(len) }
}

pub fn apply(data: &mut Vec<u8>, m: &Mutation) {
    let len = data.len();
    match m {
        Mutation::Flip { at, bit } if len > 0 => data[pos(at, len)] ^= 1 << bit,
        Mutation::Flip { .. } => {}
        Mutation::Truncate { at } => data.truncate(pos(at, len)),
        Mutation::SetU32 { at, value } => put(data, pos(at, len), &value.to_le_bytes()),
        Mutation::SetU64 { at, value } => put(data, pos(at, len), &value.to_le_bytes()),
        Mutation::Insert { at, bytes } => {
            let p = pos(at, len + 1);
            data.splice(p..p, bytes.iter().copied());
        }
        Mutation::Remove { at, len: n } => {
            let p = pos(at, len);
            data.drain(p..(p + n).min(len));
        }
        Mutation::Duplicate { from, len: n, to } => {
            let p = pos(from, len);
            let piece: Vec<u8> = data[p..(p + n).min(len)].to_vec();
            let q = pos(to, len + 1);
            data.splice(q..q, piece);
        }
        Mutation::Swap { a, b, len: n } => {
            let n = (*n).min(len / 2);
            if n == 0 {
                return;
            }
            let (mut a, mut b) = (pos(a, len - n + 1), pos(b, len - n + 1));
            if a > b {
                std::mem::swap(&mut a, &mut b);
            }
            if a + n <= b {
                let (head, tail) = data.split_at_mut(b);
                head[a..a + n].swap_with_slice(&mut tail[..n]);
            }
        }
    }
}

/// Overwrite bytes at `at`, cut off at the end of `data`.
fn put(data: &mut [u8], at: usize, bytes: &[u8]) {
    let end = (at + bytes.len()).min(data.len());
    data[at..end].copy_from_slice(&bytes[..end - at]);
}

/// `valid` with a little-endian `value` written over the bytes at `at` (for sweeps).
pub fn with_u32(valid: &[u8], at: usize, value: u32) -> Vec<u8> {
    let mut data = valid.to_vec();
    put(&mut data, at, &value.to_le_bytes());
    data
}

pub fn with_u64(valid: &[u8], at: usize, value: u64) -> Vec<u8> {
    let mut data = valid.to_vec();
    put(&mut data, at, &value.to_le_bytes());
    data
}

pub fn mutated(valid: &[u8], ms: &[Mutation]) -> Vec<u8> {
    let mut data = valid.to_vec();
    for m in ms {
        apply(&mut data, m);
    }
    data
}

/// Generated input bytes, shown escaped (not as a list of numbers) when a case fails.
#[derive(Clone, PartialEq, Eq)]
pub struct Input(pub Vec<u8>);

impl std::ops::Deref for Input {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\" ({} bytes)", self.0.escape_ascii(), self.0.len())
    }
}

/// Arbitrary bytes, mostly short, sometimes up to a few KiB.
pub fn arbitrary_bytes() -> impl Strategy<Value = Input> {
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..64),
        1 => prop::collection::vec(any::<u8>(), 64..4096),
    ]
    .prop_map(Input)
}

// ---- JSON mutations ----

/// Values that stress what a JSON field is decoded into.
pub fn extreme_json() -> impl Strategy<Value = Value> {
    let fixed: Vec<Value> = vec![
        Value::Null,
        Value::Bool(true),
        Value::from(0),
        Value::from(-1),
        Value::from(u32::MAX),
        Value::from(u32::MAX as u64 + 1),
        Value::from(1u64 << 62),
        Value::from(1u64 << 63),
        Value::from(u64::MAX),
        Value::from(i64::MIN),
        Value::from(i64::MAX),
        Value::from(1e308),
        Value::from(-0.5),
        Value::from(""),
        Value::from(".."),
        Value::from("."),
        Value::from("/"),
        Value::from("a/b"),
        Value::from("/etc/passwd"),
        Value::from("nul\0byte"),
        Value::from("\u{feff}é\u{301}"),
        Value::from("not base64 !"),
        Value::from("AAAA"),
        Value::from("0".repeat(64)),
        Value::from("f".repeat(63)),
        Value::from("9999-12-31T23:59:59Z"),
        Value::from("+262143-12-31T23:59:59Z"),
        Value::from("1970-01-01T00:00:00+23:59"),
        Value::from("x".repeat(5000)),
        Value::Array(vec![]),
        Value::Array(vec![Value::Null; 3]),
        Value::Object(Default::default()),
        nested_arrays(100),
        nested_arrays(200),
    ];
    prop_oneof![
        4 => prop::sample::select(fixed),
        1 => any::<i64>().prop_map(Value::from),
        1 => ".{0,24}".prop_map(Value::from),
    ]
}

/// `[[[...]]]`, `depth` deep: past serde_json's recursion limit at 128.
pub fn nested_arrays(depth: usize) -> Value {
    let mut v = Value::Array(vec![]);
    for _ in 0..depth {
        v = Value::Array(vec![v]);
    }
    v
}

#[derive(Clone, Debug)]
pub enum JsonMutation {
    Replace {
        at: Index,
        with: Value,
    },
    Remove {
        at: Index,
    },
    /// Duplicate an array element (a repeated record).
    Duplicate {
        at: Index,
    },
    /// Reverse an array or move an object's value under another existing key.
    Reorder {
        at: Index,
    },
    /// Add an unknown field.
    AddField {
        at: Index,
        key: String,
        value: Value,
    },
}

pub fn json_mutation() -> impl Strategy<Value = JsonMutation> {
    prop_oneof![
        5 => (any::<Index>(), extreme_json()).prop_map(|(at, with)| JsonMutation::Replace { at, with }),
        2 => any::<Index>().prop_map(|at| JsonMutation::Remove { at }),
        2 => any::<Index>().prop_map(|at| JsonMutation::Duplicate { at }),
        1 => any::<Index>().prop_map(|at| JsonMutation::Reorder { at }),
        1 => (any::<Index>(), "[a-z_\n]{1,8}", extreme_json())
            .prop_map(|(at, key, value)| JsonMutation::AddField { at, key, value }),
    ]
}

pub fn json_mutations() -> impl Strategy<Value = Vec<JsonMutation>> {
    prop::collection::vec(json_mutation(), 1..=4)
}

/// Every value's place in `v`, in pre-order, as a chain of child positions.
fn places(v: &Value, here: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    out.push(here.clone());
    let children: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(o) => o.values().collect(),
        _ => return,
    };
    for (i, c) in children.into_iter().enumerate() {
        here.push(i);
        places(c, here, out);
        here.pop();
    }
}

fn at_place<'v>(v: &'v mut Value, place: &[usize]) -> &'v mut Value {
    match place.split_first() {
        None => v,
        Some((&i, rest)) => match v {
            Value::Array(a) => at_place(&mut a[i], rest),
            Value::Object(o) => at_place(o.values_mut().nth(i).expect("place exists"), rest),
            _ => unreachable!("places only descend into containers"),
        },
    }
}

fn pick(v: &Value, at: &Index) -> Vec<usize> {
    let mut all = Vec::new();
    places(v, &mut Vec::new(), &mut all);
    all.swap_remove(at.index(all.len()))
}

pub fn apply_json(v: &mut Value, m: &JsonMutation) {
    match m {
        JsonMutation::Replace { at, with } => {
            let place = pick(v, at);
            *at_place(v, &place) = with.clone();
        }
        JsonMutation::Remove { at } => {
            let place = pick(v, at);
            if let Some((&last, parent)) = place.split_last() {
                match at_place(v, parent) {
                    Value::Array(a) => {
                        a.remove(last);
                    }
                    Value::Object(o) => {
                        let key = o.keys().nth(last).expect("key exists").clone();
                        o.remove(&key);
                    }
                    _ => {}
                }
            }
        }
        JsonMutation::Duplicate { at } => {
            let place = pick(v, at);
            if let Value::Array(a) = at_place(v, &place)
                && let Some(first) = a.first().cloned()
            {
                a.push(first);
            }
        }
        JsonMutation::Reorder { at } => {
            let place = pick(v, at);
            match at_place(v, &place) {
                Value::Array(a) => a.reverse(),
                Value::Object(o) if o.len() >= 2 => {
                    let keys: Vec<String> = o.keys().cloned().collect();
                    let first = o[&keys[0]].clone();
                    o.insert(keys[0].clone(), o[&keys[1]].clone());
                    o.insert(keys[1].clone(), first);
                }
                _ => {}
            }
        }
        JsonMutation::AddField { at, key, value } => {
            let place = pick(v, at);
            if let Value::Object(o) = at_place(v, &place) {
                o.insert(key.clone(), value.clone());
            }
        }
    }
}

pub fn mutated_json(valid: &Value, ms: &[JsonMutation]) -> Value {
    let mut v = valid.clone();
    for m in ms {
        apply_json(&mut v, m);
    }
    v
}

/// A mutated JSON document: structure-aware mutations, then sometimes byte mutations of its text.
pub fn hostile_json(valid: Value) -> impl Strategy<Value = Input> {
    (json_mutations(), prop::option::weighted(0.3, mutations())).prop_map(move |(jm, bm)| {
        let text = serde_json::to_vec(&mutated_json(&valid, &jm)).expect("JSON serialises");
        Input(match bm {
            Some(bm) => mutated(&text, &bm),
            None => text,
        })
    })
}

// ---- text mutations ----

#[derive(Clone, Debug)]
pub enum LineMutation {
    Duplicate {
        at: Index,
    },
    Remove {
        at: Index,
    },
    Swap {
        a: Index,
        b: Index,
    },
    /// Replace what follows the first `=` on a line.
    SetValue {
        at: Index,
        value: String,
    },
    /// Insert a whole line.
    Insert {
        at: Index,
        line: String,
    },
}

/// Text that breaks values in `key = value` formats.
pub fn extreme_values() -> Vec<String> {
    let mut v: Vec<String> = [
        "\"\"",
        "-1",
        "0",
        "4294967295",
        "4294967296",
        "9223372036854775807",
        "-9223372036854775808",
        "1e400",
        "nan",
        "\"unlimited\"",
        "\"-1\"",
        "\"4294967296h\"",
        "\"99999999999999999999y\"",
        "\"0d\"",
        "\"1d2d\"",
        "\"weekly on \u{20ac}\u{20ac}\"",
        "\"daily at 24:00\"",
        "\"0 0 30 2 *\"",
        "\"0 0 31 4 *\"",
        "\"*/0 * * * *\"",
        "\"59 23 29 2 *\"",
        "\"every 0h\"",
        "\"../../etc\"",
        "[]",
        "{}",
        "[1, \"a\"]",
        "{ kind = \"files\" }",
        "1979-05-27T07:32:00Z",
        "\"\u{0}\"",
        "'''\nmulti\n'''",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(format!("{}1{}", "[".repeat(3000), "]".repeat(3000)));
    v.push(format!("{}{}", "{ a = ".repeat(3000), "}".repeat(3000)));
    v.push(format!("\"{}\"", "x".repeat(10_000)));
    v
}

pub fn line_mutation() -> impl Strategy<Value = LineMutation> {
    let values = extreme_values();
    prop_oneof![
        1 => any::<Index>().prop_map(|at| LineMutation::Duplicate { at }),
        1 => any::<Index>().prop_map(|at| LineMutation::Remove { at }),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| LineMutation::Swap { a, b }),
        4 => (any::<Index>(), prop::sample::select(values))
            .prop_map(|(at, value)| LineMutation::SetValue { at, value }),
        1 => (any::<Index>(), "[a-z_.\\[\\]= \"0-9]{0,24}")
            .prop_map(|(at, line)| LineMutation::Insert { at, line }),
    ]
}

pub fn apply_lines(text: &str, ms: &[LineMutation]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for m in ms {
        let n = lines.len();
        match m {
            LineMutation::Duplicate { at } if n > 0 => {
                let i = at.index(n);
                lines.insert(i, lines[i].clone());
            }
            LineMutation::Remove { at } if n > 0 => {
                lines.remove(at.index(n));
            }
            LineMutation::Swap { a, b } if n > 0 => lines.swap(a.index(n), b.index(n)),
            LineMutation::SetValue { at, value } if n > 0 => {
                let i = at.index(n);
                if let Some((key, _)) = lines[i].split_once('=') {
                    lines[i] = format!("{key}= {value}");
                }
            }
            LineMutation::Insert { at, line } => lines.insert(at.index(n + 1), line.clone()),
            _ => {}
        }
    }
    let mut out = lines.join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// A mutated text document: line-aware mutations, then sometimes byte mutations (read lossily).
pub fn hostile_text(valid: String) -> impl Strategy<Value = String> {
    (
        prop::collection::vec(line_mutation(), 1..=4),
        prop::option::weighted(0.3, mutations()),
    )
        .prop_map(move |(lm, bm)| {
            let text = apply_lines(&valid, &lm);
            match bm {
                Some(bm) => String::from_utf8_lossy(&mutated(text.as_bytes(), &bm)).into_owned(),
                None => text,
            }
        })
}
