//! Hostile-input fuzzing of every parser of stored repository data, on stable Rust (see
//! `support/fuzzing.rs`): the config header, key slots and key files, sealed objects, pack
//! prefixes, trailers, directories and blobs, index files, trees, snapshots, locks, holds,
//! condemned records and snapshot specs.
//!
//! Each parser gets arbitrary bytes and structure-aware mutations of a valid encoding. For the
//! encrypted objects both sides are attacked: mutated ciphertext must fail authentication, and
//! arbitrary or mutated plaintext sealed with the real key (what a compromised host holding the
//! key could store) must decode or fail with `Error::Corrupt` in one line, never panic, and never
//! make the decoder allocate by a length it read (checked by a counting allocator).
//!
//! `cargo test -p bulwark-repo --test fuzz_repo -- --nocapture` prints the cases per parser;
//! `BULWARK_THOROUGH=1` runs 100 times as many.

#[path = "support/fuzzing.rs"]
mod fuzzing;

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bulwark_repo::crypto::{Cipher, MasterKey, SALT_LEN};
use bulwark_repo::index::{IndexFile, IndexPack, MasterIndex};
use bulwark_repo::keys::{Kdf, KeySlot};
use bulwark_repo::pack::{self, PACK_PREFIX_LEN, PackBuilder, PackedBlob};
use bulwark_repo::{
    BlobKind, Credential, Error, Id, Node, NodeKind, Repository, Settings, StoreBackend, Tree,
};
use fuzzing::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Value, json};

// ---- fixtures ----

/// A repository opened with a key file (HKDF, so thousands of opens stay cheap).
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    credential: Credential,
    repo: Repository,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let (credential, _) = Credential::new_key_file();
        let backend = Arc::new(StoreBackend::local(&root, true).unwrap());
        let repo = Repository::init(backend, &credential, Settings::default()).unwrap();
        Fixture {
            _dir: dir,
            root,
            credential,
            repo,
        }
    }

    fn key(&self) -> &MasterKey {
        self.repo.key()
    }

    fn backend(&self) -> Arc<StoreBackend> {
        Arc::new(StoreBackend::local(&self.root, false).unwrap())
    }

    /// Put bytes where the backend looks for `folder/name`, bypassing it: what an attacker who
    /// can write the storage does.
    fn plant(&self, folder: &str, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.root.join(folder).join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn open(&self) -> bulwark_repo::Result<Repository> {
        Repository::open(self.backend(), &self.credential)
    }
}

/// The one-line, typed failure every parser must give.
fn typed<T>(
    what: &str,
    r: &bulwark_repo::Result<T>,
    ok: impl Fn(&Error) -> bool,
) -> Result<(), TestCaseError> {
    if let Err(e) = r {
        let text = e.to_string();
        prop_assert!(ok(e), "{what}: unexpected error kind: {e:?}");
        prop_assert!(
            !text.is_empty() && !text.contains('\n'),
            "{what}: error is not one line: {text:?}"
        );
    }
    Ok(())
}

/// Count the case as accepted when the parser under test returned a value.
fn count_ok<T, E>(r: &Result<T, E>) {
    if r.is_ok() {
        accepted();
    }
}

fn corrupt(e: &Error) -> bool {
    matches!(e, Error::Corrupt { .. })
}

fn some_tree() -> Tree {
    use std::os::unix::ffi::OsStrExt;
    let mut file = Node::new("file.txt".as_ref(), NodeKind::File);
    (file.mode, file.size) = (0o644, 5);
    file.content = vec![Id([7; 32]), Id([8; 32])];
    let mut dir = Node::new("dir".as_ref(), NodeKind::Dir);
    (dir.mode, dir.subtree) = (0o755, Some(Id([9; 32])));
    let mut link = Node::new("link".as_ref(), NodeKind::Symlink);
    link.set_link_target(std::ffi::OsStr::from_bytes(b"../t\xffarget"));
    let raw = Node::new(std::ffi::OsStr::from_bytes(b"n\xe9e"), NodeKind::Fifo);
    let mut tree = Tree {
        nodes: vec![file, dir, link, raw],
    };
    tree.sort();
    tree
}

fn some_snapshot_json(tree: Id) -> Value {
    json!({
        "time": "2026-01-02T03:04:05.123456789+01:00",
        "tree": tree,
        "paths": ["/srv/data", "/etc"],
        "hostname": "host",
        "username": "user",
        "tags": ["daily"],
        "parent": Id([3; 32]),
        "excludes": ["*.tmp"],
        "dataset": "db",
        "program_version": "bulwark 0.1.0",
        "summary": {
            "files_new": 1, "files_changed": 2, "files_unmodified": 3, "files_unreadable": 0,
            "dirs_new": 1, "dirs_changed": 0, "dirs_unmodified": 0, "total_files": 6,
            "total_bytes": 1000, "bytes_read": 1000, "blobs_added": 2, "bytes_added": 900,
            "bytes_added_stored": 400, "duration_s": 1.5
        },
        "meta": { "rows": 42, "version": "16.1" }
    })
}

/// Arbitrary bytes, or a hostile mutation of `valid`'s JSON: the plaintext an attacker with the
/// key seals.
fn hostile_plaintext(valid: Value) -> impl Strategy<Value = Input> {
    prop_oneof![1 => arbitrary_bytes(), 4 => hostile_json(valid)]
}

// ---- sealed objects ----

#[test]
fn sealed_objects() {
    let key = MasterKey::generate();
    let valid = key.seal_object(br#"{"some":"object"}"#);
    let check = |stored: &[u8]| -> Result<(), TestCaseError> {
        let r = bounded_allocation("open_object", stored.len(), || key.open_object("x", stored))?;
        typed("open_object", &r, corrupt)?;
        count_ok(&r);
        prop_assert!(
            r.is_err() || stored == valid,
            "a changed object authenticated"
        );
        Ok(())
    };
    let mut n = 0;
    for len in 0..valid.len() {
        check(&valid[..len]).unwrap();
        n += 1;
    }
    for at in 0..valid.len() {
        for value in HUGE_U32 {
            check(&with_u32(&valid, at, value)).unwrap();
            n += 1;
        }
    }
    report("sealed object (sweeps)", n);
    fuzz("sealed object (bytes)", 4000, arbitrary_bytes(), |b| {
        check(&b)
    });
    fuzz("sealed object (mutated)", 4000, mutations(), |ms| {
        check(&mutated(&valid, &ms))
    });
}

// ---- config header ----

#[test]
fn config_header() {
    let f = Fixture::new();
    let valid_bytes = std::fs::read(f.root.join("config")).unwrap();
    let valid: Value = serde_json::from_slice(&valid_bytes).unwrap();
    let settings = json!({
        "chunker": {"min_size": 262144, "avg_size": 1048576, "max_size": 4194304, "seed": 7},
        "pack_size": 16777216,
        "compression_level": 3
    });
    let check = |bytes: &[u8]| -> Result<(), TestCaseError> {
        f.plant("", "config", bytes);
        let described = bounded_allocation("describe_header", bytes.len(), || {
            bulwark_repo::repository::describe_header(f.backend().as_ref())
        })?;
        // Bytes that are not JSON at all may be another tool's config (restic's is binary):
        // that is said as such, not as damage.
        typed("describe_header", &described, |e| {
            matches!(
                e,
                Error::Corrupt { .. } | Error::Invalid(_) | Error::NotBulwark { .. }
            )
        })?;
        let opened = bounded_allocation("open", bytes.len(), || f.open())?;
        typed("open", &opened, |e| {
            matches!(
                e,
                Error::Corrupt { .. }
                    | Error::Invalid(_)
                    | Error::WrongKey { .. }
                    | Error::NotBulwark { .. }
            )
        })?;
        count_ok(&opened);
        if let Ok(repo) = &opened {
            let s = repo.settings();
            prop_assert!(
                s.chunker.validate().is_ok(),
                "opened with bad chunking {s:?}"
            );
            prop_assert!(
                s.pack_size <= 512 << 20,
                "opened with pack size {}",
                s.pack_size
            );
        }
        Ok(())
    };
    let with_settings = |plain: &[u8]| {
        let mut header = valid.clone();
        header["settings"] = Value::from(B64.encode(f.key().seal_object(plain)));
        serde_json::to_vec(&header).unwrap()
    };
    let mut n = 0;
    for len in 0..valid_bytes.len() {
        check(&valid_bytes[..len]).unwrap();
        n += 1;
    }
    report("config header (truncations)", n);
    fuzz("config header (bytes)", 1000, arbitrary_bytes(), |b| {
        check(&b)
    });
    fuzz(
        "config header (mutated)",
        2000,
        hostile_json(valid.clone()),
        |b| check(&b),
    );
    fuzz(
        "config settings (sealed plaintext)",
        2000,
        hostile_plaintext(settings),
        |plain| check(&with_settings(&plain)),
    );
    f.plant("", "config", &valid_bytes);
    assert!(f.open().is_ok(), "the fixture is intact again");
}

// ---- key slots and key files ----

#[test]
fn key_slots() {
    let f = Fixture::new();
    let keys = f.root.join("keys");
    let slot_name = std::fs::read_dir(&keys)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();
    let valid_bytes = std::fs::read(keys.join(&slot_name)).unwrap();
    let valid: Value = serde_json::from_slice(&valid_bytes).unwrap();
    let Credential::KeyFile(raw) = f.credential.clone() else {
        unreachable!()
    };
    let check = |bytes: &[u8]| -> Result<(), TestCaseError> {
        f.plant("keys", &slot_name, bytes);
        let opened = bounded_allocation("open", bytes.len(), || f.open())?;
        typed("open", &opened, |e| {
            matches!(e, Error::Corrupt { .. } | Error::WrongKey { .. })
        })?;
        count_ok(&opened);
        let listed = bounded_allocation("list_keys", bytes.len(), || f.repo.list_keys())?;
        typed("list_keys", &listed, corrupt)?;
        Ok(())
    };
    // A slot whose wrapped secret is whatever the attacker sealed under the right wrapping key.
    let wrapping_secret = |secret: &[u8]| {
        let salt: [u8; SALT_LEN] = [5; SALT_LEN];
        let wrapping = bulwark_repo::crypto::derive_key(&raw, &salt, b"bulwark v1 key file slot");
        let mut buf = secret.to_vec();
        Cipher::new(&wrapping).seal_tail(&mut buf, 0, 0, &f.repo.id().0);
        let mut slot = valid.clone();
        slot["salt"] = Value::from(B64.encode(salt));
        slot["wrapped"] = Value::from(B64.encode(buf));
        serde_json::to_vec(&slot).unwrap()
    };
    let mut n = 0;
    for len in 0..valid_bytes.len() {
        check(&valid_bytes[..len]).unwrap();
        n += 1;
    }
    report("key slot (truncations)", n);
    fuzz("key slot (bytes)", 1000, arbitrary_bytes(), |b| check(&b));
    fuzz(
        "key slot (mutated)",
        2000,
        hostile_json(valid.clone()),
        |b| check(&b),
    );
    fuzz(
        "key slot (sealed secret)",
        1000,
        prop_oneof![
            4 => prop::collection::vec(any::<u8>(), 0..80),
            1 => Just(f.key().secret().to_vec()),
        ],
        |secret| {
            let bytes = wrapping_secret(&secret);
            f.plant("keys", &slot_name, &bytes);
            let opened = f.open();
            typed("open", &opened, |e| matches!(e, Error::Corrupt { .. }))?;
            count_ok(&opened);
            prop_assert!(
                opened.is_err() || secret == f.key().secret(),
                "opened with a foreign master key"
            );
            Ok(())
        },
    );
    f.plant("keys", &slot_name, &valid_bytes);
    assert!(f.open().is_ok(), "the fixture is intact again");
}

/// Argon2 parameters come from the slot, which anyone who can write the storage can replace:
/// absurd ones must be refused before any memory is committed to them.
#[test]
fn argon2_parameters() {
    let repo_id = Id([1; 32]);
    let slot = |m_kib: u32, t: u32, p: u32| KeySlot {
        version: 1,
        kind: bulwark_repo::keys::SlotKind::Passphrase,
        created: chrono::Utc::now(),
        host: "h".into(),
        user: "u".into(),
        kdf: Kdf::Argon2id { m_kib, t, p },
        salt: B64.encode([0u8; 16]),
        wrapped: B64.encode([0u8; 48]),
    };
    let pass = Credential::Passphrase("pass".into());
    const VALUES: [u32; 11] = [0, 1, 2, 7, 8, 16, 64, 1 << 20, 1 << 22, 1 << 30, u32::MAX];
    fuzz(
        "key slot (argon2 parameters)",
        1000,
        (
            prop::sample::select(&VALUES[..]),
            prop::sample::select(&VALUES[..]),
            prop::sample::select(&VALUES[..]),
        ),
        |(m, t, p)| {
            // Parameters the slot may legitimately carry cost real work; only cheap ones run.
            let plausible = m <= 1 << 20 && t <= 16 && p <= 16;
            if plausible && (m as u64) * (t as u64) > 4096 {
                return Ok(());
            }
            let r = bounded_allocation("unwrap", 0, || slot(m, t, p).unwrap(&pass, &repo_id))?;
            typed("unwrap", &r, corrupt)?;
            count_ok(&r);
            prop_assert!(
                plausible || r.is_err(),
                "accepted Argon2 m={m} KiB t={t} p={p}"
            );
            Ok(())
        },
    );
}

#[test]
fn key_files() {
    let (_, valid) = Credential::new_key_file();
    let check = |text: &str| -> Result<(), TestCaseError> {
        let r = Credential::parse_key_file(text);
        typed("parse_key_file", &r, |e| matches!(e, Error::Invalid(_)))?;
        count_ok(&r);
        Ok(())
    };
    fuzz("key file (text)", 3000, "(?s).{0,80}", |t| check(&t));
    fuzz("key file (mutated)", 3000, mutations(), |ms| {
        check(&String::from_utf8_lossy(&mutated(valid.as_bytes(), &ms)))
    });
}

// ---- packs and blobs ----

/// A pack of `payloads` with a directory whose plaintext `directory` makes from the real entries.
fn pack_with_directory(
    key: &MasterKey,
    payloads: &[Vec<u8>],
    directory: impl FnOnce(&[PackedBlob]) -> Vec<u8>,
) -> (Vec<u8>, [u8; SALT_LEN], Vec<PackedBlob>) {
    let salt = [0x5a; SALT_LEN];
    let cipher = key.object_cipher(&salt);
    let mut buf = vec![1u8];
    buf.extend_from_slice(&salt);
    let mut blobs = Vec::new();
    for p in payloads {
        let id = key.blob_id(p);
        let offset = buf.len();
        buf.extend_from_slice(p);
        cipher.seal_tail(&mut buf, offset, offset as u64, &id.0);
        blobs.push(PackedBlob {
            id,
            kind: BlobKind::Data,
            compressed: false,
            offset: offset as u32,
            stored_len: (buf.len() - offset) as u32,
            raw_len: p.len() as u32,
        });
    }
    let start = buf.len();
    buf.extend_from_slice(&directory(&blobs));
    cipher.seal_directory(&mut buf, start);
    let dir_len = (buf.len() - start) as u32;
    buf.extend_from_slice(&dir_len.to_le_bytes());
    (buf, salt, blobs)
}

fn encode_directory(blobs: &[PackedBlob]) -> Vec<u8> {
    let mut out = (blobs.len() as u32).to_le_bytes().to_vec();
    for b in blobs {
        b.encode(&mut out);
    }
    out
}

/// Everything a reader does with a pack: its salt, its directory (from the whole object and,
/// with `through_repo`, through the repository's tail reads), then every blob the directory
/// lists, sliced out as `check --read-data` does. Returns the blobs that opened.
fn read_pack(
    f: &Fixture,
    data: &[u8],
    through_repo: bool,
) -> Result<Vec<(PackedBlob, Vec<u8>)>, TestCaseError> {
    let id = Id([0xab; 32]);
    let salt = bounded_allocation("salt_of", data.len(), || pack::salt_of(&id, data))?;
    typed("salt_of", &salt, corrupt)?;
    let Ok(salt) = salt else {
        return Ok(Vec::new());
    };
    let dir = bounded_allocation("parse_directory", data.len(), || {
        pack::parse_directory(f.key(), &id, &salt, data.len() as u64, data)
    })?;
    typed("parse_directory", &dir, corrupt)?;
    count_ok(&dir);
    if through_repo {
        f.plant("data/ab", &id.to_hex(), data);
        let read = bounded_allocation("read_pack_directory", data.len(), || {
            f.repo.read_pack_directory(&id, data.len() as u64)
        })?;
        typed("read_pack_directory", &read, corrupt)?;
        if let (Ok(a), Ok(b)) = (&dir, &read) {
            prop_assert_eq!(a, &b.blobs, "tail reads and whole reads disagree");
        }
    }
    let mut opened = Vec::new();
    for b in dir.unwrap_or_default() {
        let range = b.offset as usize..b.offset as usize + b.stored_len as usize;
        prop_assert!(
            range.start >= PACK_PREFIX_LEN && range.end <= data.len(),
            "{b:?} escapes"
        );
        let stored = &data[range];
        let r = bounded_allocation("blob open", stored.len(), || b.open(f.key(), &salt, stored))?;
        typed("blob open", &r, corrupt)?;
        if let Ok(plain) = r {
            prop_assert_eq!(plain.len(), b.raw_len as usize);
            opened.push((b, plain));
        }
    }
    Ok(opened)
}

#[test]
fn pack_ciphertext() {
    let f = Fixture::new();
    let payloads: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 40 + 30 * i as usize]).collect();
    let (valid, _, blobs) = pack_with_directory(f.key(), &payloads, encode_directory);
    let check = |data: &[u8]| -> Result<(), TestCaseError> {
        for (b, plain) in read_pack(&f, data, true)? {
            // Authentication: whatever opened is exactly what was sealed under that id.
            let i = blobs.iter().position(|o| o.id == b.id);
            prop_assert!(i.is_some(), "a blob the pack never held opened");
            prop_assert_eq!(&plain, &payloads[i.unwrap()]);
        }
        Ok(())
    };
    let mut n = 0;
    for len in 0..valid.len() {
        check(&valid[..len]).unwrap();
        n += 1;
    }
    for back in 1..=8 {
        for value in HUGE_U32 {
            check(&with_u32(&valid, valid.len() - back, value)).unwrap();
            n += 1;
        }
    }
    report("pack trailer (sweeps)", n);
    fuzz("pack prefix (bytes)", 3000, arbitrary_bytes(), |b| {
        let r = pack::salt_of(&Id([1; 32]), &b);
        typed("salt_of", &r, corrupt)?;
        count_ok(&r);
        prop_assert_eq!(r.is_ok(), b.len() >= PACK_PREFIX_LEN && b[0] == 1);
        Ok(())
    });
    fuzz("pack (bytes)", 2000, arbitrary_bytes(), |b| check(&b));
    fuzz("pack (mutated)", 4000, mutations(), |ms| {
        check(&mutated(&valid, &ms))
    });
}

/// Directory entries an attacker with the key writes: offsets and lengths anywhere, counts that
/// disagree with the size, duplicated and reordered entries.
#[test]
fn pack_directory_plaintext() {
    let f = Fixture::new();
    let payloads: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 10 + 20 * i as usize]).collect();
    let (_, _, blobs) = pack_with_directory(f.key(), &payloads, encode_directory);
    let valid_dir = encode_directory(&blobs);
    let check = |dir_plain: Vec<u8>| -> Result<(), TestCaseError> {
        let (data, _, _) = pack_with_directory(f.key(), &payloads, |_| dir_plain);
        // The trailer is honest here: the repository's tail reads are the ciphertext test's.
        read_pack(&f, &data, false)?;
        Ok(())
    };
    let mut n = 0;
    for at in 0..valid_dir.len() {
        for value in HUGE_U32 {
            check(with_u32(&valid_dir, at, value)).unwrap();
            n += 1;
        }
    }
    for len in 0..valid_dir.len() {
        check(valid_dir[..len].to_vec()).unwrap();
        n += 1;
    }
    report("pack directory (sweeps)", n);
    fuzz(
        "pack directory (sealed bytes)",
        2000,
        arbitrary_bytes(),
        |b| check(b.0),
    );
    fuzz(
        "pack directory (sealed, mutated)",
        4000,
        mutations(),
        |ms| check(mutated(&valid_dir, &ms)),
    );
    let field = || prop_oneof![prop::sample::select(&HUGE_U32[..]), 0u32..400, any::<u32>()];
    let entry = (any::<u8>(), field(), field(), field());
    fuzz(
        "pack directory (sealed, crafted entries)",
        3000,
        (prop::collection::vec(entry, 0..8), any::<bool>()),
        |(entries, honest_count)| {
            let mut dir = Vec::new();
            let count = if honest_count {
                entries.len() as u32
            } else {
                u32::MAX
            };
            dir.extend_from_slice(&count.to_le_bytes());
            for (i, (flags, offset, stored_len, raw_len)) in entries.iter().enumerate() {
                dir.push(*flags);
                dir.extend_from_slice(&blobs[i % blobs.len()].id.0);
                dir.extend_from_slice(&offset.to_le_bytes());
                dir.extend_from_slice(&stored_len.to_le_bytes());
                dir.extend_from_slice(&raw_len.to_le_bytes());
            }
            check(dir)
        },
    );
}

/// Blob plaintext an attacker with the key seals: anything, compressed or not, with any claimed
/// raw length. Opening it must fail unless it is exactly the blob its id names.
#[test]
fn blob_plaintext() {
    let key = MasterKey::generate();
    let salt = [3u8; SALT_LEN];
    let cipher = key.object_cipher(&salt);
    let bomb = zstd::bulk::compress(&vec![0u8; 4 << 20], 19).unwrap();
    let payload = prop_oneof![
        3 => arbitrary_bytes().prop_map(|b| (b, false)),
        3 => arbitrary_bytes().prop_map(|b| (Input(zstd::bulk::compress(&b, 1).unwrap()), true)),
        1 => Just((Input(bomb.clone()), true)),
    ];
    let raw_len = prop_oneof![
        1 => prop::sample::select(&HUGE_U32[..]),
        1 => 0u32..5000,
        1 => Just(4u32 << 20),
    ];
    fuzz(
        "blob (sealed plaintext)",
        3000,
        (payload, raw_len, any::<bool>(), any::<bool>()),
        |((payload, is_zstd), raw_len, flag_compressed, id_of_payload)| {
            let plain_guess = if is_zstd {
                zstd::stream::decode_all(&payload[..]).unwrap_or_default()
            } else {
                payload.0.clone()
            };
            let id = if id_of_payload {
                key.blob_id(&plain_guess)
            } else {
                Id([9; 32])
            };
            let offset = 33u32;
            let mut stored = payload.0.clone();
            cipher.seal_tail(&mut stored, 0, offset as u64, &id.0);
            let blob = PackedBlob {
                id,
                kind: BlobKind::Data,
                compressed: flag_compressed,
                offset,
                stored_len: stored.len() as u32,
                raw_len,
            };
            // A compressed blob may legitimately expand: zstd's best case is 128 KiB per 4 bytes.
            let (r, largest) = largest_allocation(|| blob.open(&key, &salt, &stored));
            let allowed = allocation_allowance(stored.len()) + 32 * 1024 * stored.len();
            prop_assert!(
                largest <= allowed,
                "opening allocated {largest} bytes for a {}-byte blob claiming {raw_len}",
                stored.len()
            );
            typed("blob open", &r, corrupt)?;
            count_ok(&r);
            if let Ok(plain) = &r {
                prop_assert_eq!(key.blob_id(plain), id);
                prop_assert_eq!(plain.len(), raw_len as usize);
            }
            Ok(())
        },
    );
}

/// Index entries say where to read; one claiming gigabytes in a small pack is refused by the
/// read, not served by allocating what it claims.
#[test]
fn blob_reads_from_lying_index_entries() {
    let f = Fixture::new();
    let payloads = vec![vec![1u8; 100]];
    let (data, salt, blobs) = pack_with_directory(f.key(), &payloads, encode_directory);
    let pack_id = Id::of_stored(&data);
    f.plant(
        &format!("data/{}", &pack_id.to_hex()[..2]),
        &pack_id.to_hex(),
        &data,
    );
    let field =
        |honest: u32| prop_oneof![Just(honest), prop::sample::select(&HUGE_U32[..]), 0u32..400];
    let honest = blobs[0];
    fuzz(
        "blob read (index entries)",
        2000,
        (
            field(honest.offset),
            field(honest.stored_len),
            field(honest.raw_len),
            any::<bool>(),
        ),
        |(offset, stored_len, raw_len, compressed)| {
            let mut index = MasterIndex::default();
            let blob = PackedBlob {
                offset,
                stored_len,
                raw_len,
                compressed,
                ..blobs[0]
            };
            index.add_pack(&IndexPack {
                id: pack_id,
                salt,
                size: data.len() as u64,
                blobs: vec![blob],
            });
            index.finish();
            let loc = index.lookup(&blob.id).expect("indexed");
            let r = bounded_allocation("read_blob", data.len(), || f.repo.read_blob(&loc))?;
            typed("read_blob", &r, corrupt)?;
            count_ok(&r);
            if let Ok(plain) = r {
                prop_assert_eq!(&plain, &payloads[0]);
            }
            Ok(())
        },
    );
}

// ---- index files ----

fn some_index() -> IndexFile {
    let blob = |n: u8, kind| PackedBlob {
        id: Id([n; 32]),
        kind,
        compressed: n.is_multiple_of(2),
        offset: 33 + 100 * n as u32,
        stored_len: 100,
        raw_len: 1000 + n as u32,
    };
    IndexFile {
        packs: vec![
            IndexPack {
                id: Id([1; 32]),
                salt: [2; SALT_LEN],
                size: 5000,
                blobs: vec![blob(1, BlobKind::Data), blob(2, BlobKind::Tree)],
            },
            IndexPack {
                id: Id([3; 32]),
                salt: [4; SALT_LEN],
                size: 600,
                blobs: vec![blob(5, BlobKind::Data)],
            },
        ],
        supersedes: vec![Id([7; 32]), Id([8; 32])],
    }
}

/// The plaintext encoding of an index file (before compression and sealing).
fn index_plaintext(key: &MasterKey, file: &IndexFile) -> Vec<u8> {
    let sealed = file.encode(key);
    zstd::stream::decode_all(&key.open_object("index", &sealed).unwrap()[..]).unwrap()
}

fn check_index(key: &MasterKey, stored: &[u8]) -> Result<Option<IndexFile>, TestCaseError> {
    let r = bounded_allocation("IndexFile::decode", stored.len(), || {
        IndexFile::decode(key, "x", stored)
    })?;
    typed("IndexFile::decode", &r, corrupt)?;
    count_ok(&r);
    if let Ok(file) = &r {
        let mut index = MasterIndex::default();
        for p in &file.packs {
            index.add_pack(p);
        }
        index.finish();
        for p in &file.packs {
            for b in &p.blobs {
                prop_assert!(index.lookup(&b.id).is_some());
            }
        }
    }
    Ok(r.ok())
}

#[test]
fn index_files() {
    let key = MasterKey::generate();
    let file = some_index();
    let valid = file.encode(&key);
    let plain = index_plaintext(&key, &file);
    let seal = |plain: &[u8]| key.seal_object(&zstd::bulk::compress(plain, 3).unwrap());
    let mut n = 0;
    for len in 0..valid.len() {
        assert!(check_index(&key, &valid[..len]).unwrap().is_none());
        n += 1;
    }
    for at in 0..plain.len() {
        for value in HUGE_U32 {
            check_index(&key, &seal(&with_u32(&plain, at, value))).unwrap();
            n += 1;
        }
        for value in HUGE_U64 {
            check_index(&key, &seal(&with_u64(&plain, at, value))).unwrap();
            n += 1;
        }
    }
    for len in 0..plain.len() {
        assert!(check_index(&key, &seal(&plain[..len])).unwrap().is_none());
        n += 1;
    }
    report("index file (sweeps)", n);
    fuzz("index file (bytes)", 2000, arbitrary_bytes(), |b| {
        check_index(&key, &b).map(|_| ())
    });
    fuzz("index file (mutated ciphertext)", 3000, mutations(), |ms| {
        let bad = mutated(&valid, &ms);
        let r = check_index(&key, &bad)?;
        prop_assert!(
            r.is_none() || bad == valid,
            "a changed index file authenticated"
        );
        Ok(())
    });
    fuzz("index file (sealed plaintext)", 4000, mutations(), |ms| {
        check_index(&key, &seal(&mutated(&plain, &ms))).map(|_| ())
    });
    fuzz(
        "index file (sealed non-zstd)",
        1000,
        arbitrary_bytes(),
        |b| check_index(&key, &key.seal_object(&b)).map(|_| ()),
    );
}

/// A few KiB that decompress to hundreds of MiB: refused without inflating them.
#[test]
fn index_decompression_bomb() {
    use std::io::Write;
    let key = MasterKey::generate();
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 19).unwrap();
    encoder.write_all(b"BWI1").unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..256 {
        encoder.write_all(&zeros).unwrap();
    }
    let stored = key.seal_object(&encoder.finish().unwrap());
    let (r, largest) = largest_allocation(|| IndexFile::decode(&key, "bomb", &stored));
    let e = r.expect_err("a 256 MiB index from a few KiB is refused");
    assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
    assert!(
        largest <= allocation_allowance(stored.len()) * 2,
        "inflated the bomb: {largest} bytes at once from {} stored",
        stored.len()
    );
    report("index file (decompression bomb)", 1);
}

// ---- trees ----

fn exercise_tree(tree: &Tree) {
    for node in &tree.nodes {
        if let Ok(name) = node.os_name() {
            assert!(
                tree.find(&name).is_some(),
                "a node cannot be found by its own name"
            );
        }
        let _ = node.has_safe_name();
        let _ = node.link_target();
    }
    let _ = Tree::from_bytes(&Id([0; 32]), &tree.to_bytes()).expect("a parsed tree re-parses");
}

#[test]
fn trees() {
    let key = MasterKey::generate();
    let valid = serde_json::to_value(some_tree()).unwrap();
    let check = |bytes: &[u8]| -> Result<(), TestCaseError> {
        let r = bounded_allocation("Tree::from_bytes", bytes.len(), || {
            Tree::from_bytes(&Id([0; 32]), bytes)
        })?;
        typed("Tree::from_bytes", &r, corrupt)?;
        count_ok(&r);
        if let Ok(tree) = &r {
            exercise_tree(tree);
        }
        // The same bytes as a tree blob in a pack, opened the way restore opens it.
        let mut builder = PackBuilder::new(&key, BlobKind::Tree, 1 << 16);
        builder.add(key.blob_id(bytes), bytes, false, bytes.len() as u32);
        let pack = builder.finish();
        let dir = pack::parse_directory(
            &key,
            &pack.id,
            &pack.salt,
            pack.data.len() as u64,
            &pack.data,
        )
        .expect("an honest pack parses");
        let b = dir[0];
        let range = b.offset as usize..(b.offset + b.stored_len) as usize;
        let plain = b
            .open(&key, &pack.salt, &pack.data[range])
            .expect("an honest blob opens");
        prop_assert_eq!(&plain[..], bytes);
        Ok(())
    };
    fuzz("tree (bytes)", 2000, arbitrary_bytes(), |b| check(&b));
    fuzz("tree (mutated)", 5000, hostile_json(valid), |b| check(&b));
}

// ---- snapshots, locks, holds, condemned records ----

/// Ciphertext mutations of a sealed valid object, arbitrary bytes, or the sealed hostile
/// plaintext of `valid`.
fn stored_object(key: MasterKey, valid: Value) -> impl Strategy<Value = Input> {
    let sealed = key.seal_object(&serde_json::to_vec(&valid).unwrap());
    prop_oneof![
        1 => arbitrary_bytes(),
        2 => mutations().prop_map(move |ms| Input(mutated(&sealed, &ms))),
        5 => hostile_plaintext(valid).prop_map(move |p| Input(key.seal_object(&p))),
    ]
}

#[test]
fn snapshots() {
    let f = Fixture::new();
    let valid = some_snapshot_json(Id([4; 32]));
    fuzz(
        "snapshot",
        4000,
        (stored_object(f.key().clone(), valid), any::<bool>()),
        |(stored, named_by_hash)| {
            let id = if named_by_hash {
                Id::of_stored(&stored)
            } else {
                Id([6; 32])
            };
            let path = f.plant("snapshots", &id.to_hex(), &stored);
            let r =
                bounded_allocation("load_snapshot", stored.len(), || f.repo.load_snapshot(&id))?;
            typed("load_snapshot", &r, corrupt)?;
            count_ok(&r);
            if let Ok(s) = &r {
                let _ = s.same_source(&s.hostname, &s.paths);
                serde_json::to_vec(s).expect("a loaded snapshot serialises");
            }
            let all = f.repo.load_snapshots();
            typed("load_snapshots", &all, corrupt)?;
            let latest = f.repo.find_snapshot("latest", |_| true);
            typed("find_snapshot", &latest, |e| {
                corrupt(e) || matches!(e, Error::NotFound { .. })
            })?;
            std::fs::remove_file(path).unwrap();
            Ok(())
        },
    );
}

#[test]
fn locks() {
    let f = Fixture::new();
    let valid = json!({
        "time": "2026-01-01T00:00:00Z", "host": "h", "user": "u", "pid": 1234,
        "kind": "shared", "holder": Id([1; 32]),
    });
    fuzz(
        "lock",
        4000,
        stored_object(f.key().clone(), valid),
        |stored| {
            let name = Id([2; 32]).to_hex();
            let path = f.plant("locks", &name, &stored);
            let backend = f.backend();
            let r = bounded_allocation("read_lock", stored.len(), || {
                bulwark_repo::lock::read_lock(backend.as_ref(), f.key(), &name)
            })?;
            typed("read_lock", &r, corrupt)?;
            count_ok(&r);
            if let Ok(info) = &r {
                let _ = (info.is_stale(), info.describe());
            }
            let live = bulwark_repo::lock::live_locks(backend.as_ref(), f.key());
            prop_assert!(
                live.is_ok(),
                "an unreadable lock blocks listing: {:?}",
                live.err()
            );
            std::fs::remove_file(path).unwrap();
            Ok(())
        },
    );
}

#[test]
fn holds() {
    let f = Fixture::new();
    let valid = json!({
        "snapshot": Id([1; 32]), "until": "2027-01-01T00:00:00Z", "reason": "legal",
        "created": "2026-01-01T00:00:00Z", "by": "counsel",
    });
    fuzz(
        "hold",
        4000,
        stored_object(f.key().clone(), valid),
        |stored| {
            let path = f.plant("holds", &Id([2; 32]).to_hex(), &stored);
            let r = bounded_allocation("holds", stored.len(), || f.repo.holds())?;
            typed("holds", &r, corrupt)?;
            count_ok(&r);
            for (_, h) in r.unwrap_or_default() {
                let _ = h.is_active(chrono::Utc::now());
            }
            std::fs::remove_file(path).unwrap();
            Ok(())
        },
    );
}

#[test]
fn condemned_records() {
    let f = Fixture::new();
    let valid = json!({
        "time": "2026-01-01T00:00:00Z", "packs": [Id([1; 32]), Id([2; 32])],
        "holders": [Id([3; 32])],
    });
    fuzz(
        "condemned record",
        4000,
        stored_object(f.key().clone(), valid),
        |stored| {
            let path = f.plant("condemned", &Id([2; 32]).to_hex(), &stored);
            let r = bounded_allocation("condemnations", stored.len(), || f.repo.condemnations())?;
            typed("condemnations", &r, corrupt)?;
            count_ok(&r);
            let index = f.repo.load_index();
            typed("load_index", &index, corrupt)?;
            std::fs::remove_file(path).unwrap();
            Ok(())
        },
    );
}

#[test]
fn snapshot_specs() {
    let f = Fixture::new();
    let snap: bulwark_repo::Snapshot =
        serde_json::from_value(some_snapshot_json(Id([4; 32]))).unwrap();
    let ids: Vec<String> = (0..3)
        .map(|i| {
            let mut s = snap.clone();
            s.tags = vec![i.to_string()];
            f.repo.save_snapshot(&s).unwrap().to_hex()
        })
        .collect();
    let spec = prop_oneof![
        "(?s).{0,70}",
        "[0-9a-fA-F]{0,70}",
        (prop::sample::select(ids), 0usize..64).prop_map(|(id, n)| id[..n].to_string()),
    ];
    fuzz("snapshot spec", 3000, spec, |spec| {
        let r = f.repo.find_snapshot(&spec, |_| true);
        typed("find_snapshot", &r, |e| {
            matches!(e, Error::Invalid(_) | Error::NotFound { .. })
        })?;
        count_ok(&r);
        if let Ok((id, _)) = &r {
            prop_assert!(spec == "latest" || id.to_hex().starts_with(&spec.to_ascii_lowercase()));
        }
        Ok(())
    });
}

/// Found by the thorough run: serde's error for a bad id in the config header quoted the id
/// raw, so a newline in it broke the error over two lines.
#[test]
fn a_newline_inside_a_stored_value_stays_inside_one_error_line() {
    let f = Fixture::new();
    let mut header: Value =
        serde_json::from_slice(&std::fs::read(f.root.join("config")).unwrap()).unwrap();
    header["id"] = Value::from("not\nhex");
    f.plant("", "config", &serde_json::to_vec(&header).unwrap());
    let e = bulwark_repo::repository::describe_header(f.backend().as_ref()).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
    assert!(
        !e.to_string().contains('\n') && e.to_string().contains("not\\nhex"),
        "{e}"
    );
    let e = f
        .repo
        .find_snapshot("latest\n", |_| true)
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\n'), "{e}");
}
