//! Index files stay small however small the blobs: a pack of tiny blobs holds a hundred thousand
//! of them, and each index file is read whole when the index loads, so a file is written once 64Ki
//! blobs await one (or a pack holds more on its own), not only every 32 packs.

use std::sync::Arc;

use bulwark_repo::writer::BlobWriter;
use bulwark_repo::{BlobKind, Credential, Id, Repository, Settings, StoreBackend};

#[test]
fn many_tiny_blobs_are_indexed_in_files_of_bounded_size() {
    let dir = tempfile::tempdir().unwrap();
    let (credential, _) = Credential::new_key_file();
    let backend = Arc::new(StoreBackend::local(dir.path(), true).unwrap());
    let settings = Settings {
        pack_size: 1 << 20,
        ..Settings::default()
    };
    let repo = Repository::init(backend, &credential, settings).unwrap();
    let index = repo.load_index().unwrap();
    const BLOBS: u32 = 300_000;
    let (ids, _) = BlobWriter::run(&repo, &index, 1, |w| {
        (0..BLOBS)
            .map(|i| w.save(BlobKind::Data, format!("blob {i}").as_bytes()))
            .collect::<Result<Vec<Id>, _>>()
    })
    .unwrap();
    let files: Vec<_> = repo
        .list_index_files()
        .unwrap()
        .iter()
        .map(|name| repo.read_index_file(name).unwrap())
        .collect();
    let per_file: Vec<usize> = files
        .iter()
        .map(|f| f.packs.iter().map(|p| p.blobs.len()).sum())
        .collect();
    let largest_pack = files
        .iter()
        .flat_map(|f| &f.packs)
        .map(|p| p.blobs.len())
        .max()
        .unwrap();
    assert_eq!(per_file.iter().sum::<usize>(), BLOBS as usize);
    assert!(largest_pack < 65_536, "{largest_pack} blobs in one pack");
    assert!(per_file.len() >= 4, "{per_file:?}");
    assert!(
        per_file.iter().all(|&n| n < 65_536 + largest_pack),
        "{per_file:?}"
    );
    let loaded = repo.load_index().unwrap();
    assert!(ids.iter().all(|id| loaded.contains(id)));
}
