//! `bulwark export`: a files snapshot as tar and as zip, extracted by the system's `tar` and
//! `unzip`, checks with `sha256sum -c SHA256SUMS` and equals the source; each export is a ledger
//! event; a large file streams to stdout within a memory ceiling far below its size (256 MiB,
//! 2 GiB with BULWARK_THOROUGH=1), measured as the child's peak RSS.

mod common;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

fn sh(dir: &Path, script: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script}: {text}");
    text
}

fn snapshot_of(s: &Site, dataset: &str) -> String {
    s.events()
        .iter()
        .rev()
        .find(|e| e["kind"] == "backup" && e["dataset"] == dataset && e["ok"] == true)
        .and_then(|e| e["details"]["snapshot_id"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no backup of {dataset}"))
}

#[test]
fn tar_and_zip_exports_check_with_sha256sum_and_are_recorded() {
    let s = site("");
    s.run(&["run"]).assert_ok();
    let id = snapshot_of(&s, "docs");
    for (format, unpack) in [
        ("tar", "tar -xf ../out.tar"),
        ("zip", "unzip -q ../out.zip"),
    ] {
        let out = s.root.join(format!("out.{format}"));
        let out_arg = out.display().to_string();
        s.run(&["export", &id, "--format", format, "--out", &out_arg])
            .assert_ok();
        let x = s.root.join(format!("x-{format}"));
        std::fs::create_dir(&x).unwrap();
        sh(&x, unpack);
        let checked = sh(&x, "sha256sum -c SHA256SUMS");
        assert!(
            checked.contains(": OK") && !checked.contains("FAILED"),
            "{checked}"
        );
        // The snapshot's paths are absolute; the archive holds them relative.
        let source = s.root.join("sample/files");
        let inside = x.join(source.strip_prefix("/").unwrap());
        sh(
            &s.root,
            &format!("diff -r {} {}", source.display(), inside.display()),
        );
        // Writing over a file is refused.
        s.run(&["export", &id, "--format", format, "--out", &out_arg])
            .assert_code(1)
            .assert_one_error_line();
    }
    let exports: Vec<_> = s
        .events()
        .into_iter()
        .filter(|e| e["kind"] == "export")
        .collect();
    assert_eq!(exports.len(), 2, "{exports:?}");
    assert!(
        exports
            .iter()
            .all(|e| e["ok"] == true && e["details"]["snapshot"] == id)
    );
    // A path inside the snapshot, and a snapshot that is not there.
    let sub = format!("{id}:{}", s.root.join("sample/files").display());
    let part = s.root.join("part.tar").display().to_string();
    s.run(&["export", &sub, "--out", &part]).assert_ok();
    let missing = s.root.join("missing.tar").display().to_string();
    s.run(&["export", "deadbeefdeadbeef", "--out", &missing])
        .assert_code(1)
        .assert_one_error_line();
    assert!(!Path::new(&missing).exists(), "no half archive is left");
}

#[test]
fn a_large_file_streams_to_stdout_in_constant_memory() {
    let size: u64 = if thorough() { 2 << 30 } else { 256 << 20 };
    let s = site("\n[datasets.big]\nkind = \"files\"\npaths = [\"big\"]\nschedule = \"daily\"\n");
    let dir = s.root.join("big");
    std::fs::create_dir(&dir).unwrap();
    // Generated, not stored: a pattern that does not deduplicate to nothing but is quick to make.
    let mut f = std::fs::File::create(dir.join("large.bin")).unwrap();
    let mut block = vec![0u8; 1 << 20];
    for i in 0..(size >> 20) {
        for (j, b) in block.iter_mut().enumerate().step_by(4096) {
            *b = (i as usize ^ j) as u8;
        }
        std::io::Write::write_all(&mut f, &block).unwrap();
    }
    drop(f);
    s.run(&["run", "big"]).assert_ok();
    let id = snapshot_of(&s, "big");
    // Reaped below by wait4, which also gives its resource usage.
    #[allow(clippy::zombie_processes)]
    let mut child = bulwark()
        .args(["export", &id, "--format", "tar", "-c"])
        .arg(&s.config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    // The child's own peak resident set, from the kernel's accounting at its exit.
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid);
    assert_eq!(std::process::ExitStatus::from_raw(status).code(), Some(0));
    let peak = usage.ru_maxrss as u64 * 1024;
    assert!(total > size, "the tar holds the file: {total} bytes");
    let ceiling = 160u64 << 20;
    eprintln!(
        "exported {total} bytes to stdout with a peak RSS of {} MiB",
        peak >> 20
    );
    assert!(
        peak < ceiling,
        "peak RSS {} MiB for a {} MiB file",
        peak >> 20,
        size >> 20
    );
}
