//! Hostile-input fuzzing of `--exclude`/`--include` patterns (`Patterns::new`, then matching),
//! on stable Rust with the kit in `bulwark-repo/tests/support/fuzzing.rs`: arbitrary text,
//! glob syntax from a hostile alphabet (unbalanced and deeply nested braces and classes,
//! `**` runs, escapes) and the paths they are matched against. Nothing may panic; a refused
//! pattern is named in a one-line error.
//!
//! `cargo test -p bulwark-source --test fuzz_patterns -- --nocapture` prints the cases;
//! `BULWARK_THOROUGH=1` runs 100 times as many.

#[path = "../../bulwark-repo/tests/support/fuzzing.rs"]
mod fuzzing;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use bulwark_source::Patterns;
use fuzzing::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

fn glob() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "*", "**", "**/", "/", "?", "[", "]", "[!", "[^", "[a-z]", "[]]", "{", "}", ",", "{a,b}",
        "\\", "\\*", ".", "..", "a", "é", "\u{0}", "-", "!", "/**/", "***",
    ]);
    prop_oneof![
        4 => prop::collection::vec(token, 0..12).prop_map(|t| t.concat()),
        1 => "(?s).{0,40}",
    ]
}

fn path() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"/srv/data/a.tmp".to_vec()),
        Just(b"/".to_vec()),
        Just(b"".to_vec()),
        Just(b"relative/x".to_vec()),
        Just(b"/a/\xff\xfe/b".to_vec()),
        prop::collection::vec(any::<u8>(), 0..40),
    ]
}

fn check(patterns: &[String], paths: &[Vec<u8>]) -> Result<(), TestCaseError> {
    let total: usize = patterns.iter().map(String::len).sum();
    // globset compiles to regular expressions: proportional to the patterns, never to a count.
    let allowed = 64 * total + (8 << 20);
    match allocation_within("Patterns::new", total, allowed, || Patterns::new(patterns))? {
        Err(e) => prop_assert!(!e.is_empty() && !e.contains('\n'), "not one line: {e:?}"),
        Ok(p) => {
            accepted();
            prop_assert_eq!(p.patterns(), patterns);
            for raw in paths {
                let _ = p.matches(Path::new(OsStr::from_bytes(raw)));
            }
        }
    }
    Ok(())
}

#[test]
fn patterns() {
    fuzz(
        "patterns",
        4000,
        (
            prop::collection::vec(glob(), 0..4),
            prop::collection::vec(path(), 0..4),
        ),
        |(patterns, paths)| check(&patterns, &paths),
    );
    let mut n = 0;
    for deep in [
        "{".repeat(10_000),
        format!("{}a{}", "{".repeat(5_000), "}".repeat(5_000)),
        format!("{}a{}", "{a,".repeat(2_000), "}".repeat(2_000)),
        "[".repeat(10_000),
        "**/".repeat(10_000),
        "\\".repeat(10_001),
    ] {
        check(&[deep], &[b"/a/b".to_vec()]).unwrap();
        n += 1;
    }
    report("patterns (deep nesting)", n);
}
