//! What is on disk: no plaintext of file contents, file names, paths, tags or host names anywhere
//! in the repository, and every pack, index file and snapshot named by the BLAKE3 hash of its bytes.

mod common;

use std::fs;
use std::path::Path;

use common::*;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_plaintext_reaches_the_repository() {
    let mut rng = Prng::new(seed("privacy"));
    let tag = format!("{:016x}", rng.next_u64());
    let marker = format!("BWMARKER-{tag}");
    let file_name = format!("bwname-{tag}.secret");
    let dir_name = format!("bwdir-{tag}");
    let snapshot_tag = format!("bwtag-{tag}");
    let host = format!("bwhost-{tag}");

    let work = tempdir("bulwark-privacy-");
    let src = work.path().join(&dir_name);
    fs::create_dir(&src).unwrap();
    // Compressible: the marker over and over.
    fs::write(src.join(&file_name), marker.repeat(50_000)).unwrap();
    // Incompressible: random bytes with the marker embedded here and there.
    let mut noisy = rng.bytes(2 << 20);
    for k in 0..20 {
        let at = (k * 104_729) % (noisy.len() - marker.len());
        noisy[at..at + marker.len()].copy_from_slice(marker.as_bytes());
    }
    fs::write(src.join("noisy.bin"), &noisy).unwrap();
    // A small file, stored in a single chunk.
    fs::write(src.join("short.txt"), format!("only {marker} here\n")).unwrap();

    let repo = Repo::init(&["--chunk-avg-kib", "64"]);
    repo.backup(&[&src], &["--tag", &snapshot_tag, "--host", &host]);
    repo.json(&["check", "--json", "--read-data"]);
    let stdin = run_with_input(
        &mut repo.cmd(&[
            "backup",
            "--json",
            "--stdin-name",
            &format!("stdin-{file_name}"),
        ]),
        Some(marker.repeat(1000).as_bytes()),
    );
    stdin.assert_ok();

    let needles = [&marker, &file_name, &dir_name, &snapshot_tag, &host];
    let files = files_below(&repo.path);
    assert!(files.len() > 5, "{files:?}");
    for path in &files {
        let bytes = fs::read(path).unwrap();
        for needle in needles {
            assert!(
                !contains(&bytes, needle.as_bytes()),
                "{} contains the plaintext {needle:?}",
                path.display()
            );
        }
    }
    // Nothing outside the documented layout either.
    for path in &files {
        let rel = path.strip_prefix(&repo.path).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        assert!(
            ["config", "keys", "data", "index", "snapshots"].contains(&top),
            "unexpected object {}",
            rel.display()
        );
    }
}

#[test]
fn stored_objects_are_named_by_the_blake3_of_their_bytes() {
    let work = tempdir("bulwark-names-");
    let src = work.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), Prng::new(3).bytes(3 << 20)).unwrap();
    fs::write(src.join("b"), Prng::new(4).text(1 << 20)).unwrap();
    let repo = Repo::init(&["--pack-size-mib", "1", "--chunk-avg-kib", "64"]);
    repo.backup(&[&src], &[]);
    repo.backup(&[&src], &["--tag", "again"]);
    let mut seen = 0;
    for folder in ["data", "index", "snapshots"] {
        for path in files_below(&repo.path.join(folder)) {
            let name = path.file_name().unwrap().to_str().unwrap();
            assert!(is_hex64(name), "{}", path.display());
            let bytes = fs::read(&path).unwrap();
            assert_eq!(
                blake3::hash(&bytes).to_hex().as_str(),
                name,
                "{}",
                path.display()
            );
            if folder == "data" {
                // Packs are spread over data/XX/ by the first two digits of their name.
                let parent = path
                    .parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_str()
                    .unwrap();
                assert_eq!(parent, &name[..2]);
                assert_eq!(
                    path.parent().unwrap().parent().unwrap(),
                    repo.path.join("data")
                );
            }
            seen += 1;
        }
    }
    assert!(
        seen >= 5,
        "expected several packs, an index file and two snapshots"
    );
    assert_eq!(files_below(&repo.path.join("snapshots")).len(), 2);
    // No lock is left behind by finished commands.
    assert_eq!(files_below(&repo.path.join("locks")).len(), 0);
    assert!(Path::new(&repo.path.join("config")).is_file());
}
