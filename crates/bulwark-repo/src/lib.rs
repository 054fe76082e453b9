//! The Bulwark repository format.
//!
//! A repository is a set of immutable objects in a backend: a plaintext `config` header, key slots
//! in `keys/`, packs of encrypted blobs in `data/`, encrypted index files in `index/`, encrypted
//! snapshots in `snapshots/`, locks in `locks/` and archived PostgreSQL WAL in `wal/`. See `crypto`
//! for the encryption scheme and the nonce argument, `pack` for the pack layout, `writer` for
//! crash safety and `wal` for the WAL archive's format and protocol.

pub mod backend;
pub mod cache;
pub mod chunker;
pub mod condemned;
pub mod crypto;
pub mod error;
pub mod holds;
pub mod id;
pub mod index;
pub mod keys;
pub mod lock;
pub mod pack;
pub mod repository;
pub mod snapshot;
pub mod transfer;
pub mod tree;
pub mod wal;
pub mod writer;

pub use backend::{Backend, FileKind, StoreBackend};
pub use error::{Error, Result};
pub use id::Id;
pub use index::MasterIndex;
pub use keys::Credential;
pub use lock::LockKind;
pub use pack::BlobKind;
pub use repository::{Repository, Settings};
pub use snapshot::{Snapshot, Summary};
pub use tree::{Node, NodeKind, Tree};

pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

pub fn user_name() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| unsafe { libc::getuid() }.to_string())
}
