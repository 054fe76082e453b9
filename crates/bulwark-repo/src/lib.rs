//! The Bulwark repository format.
//!
//! A repository is a set of immutable objects in a backend: a plaintext `config` header, key slots
//! in `keys/`, packs of encrypted blobs in `data/`, encrypted index files in `index/`, encrypted
//! snapshots in `snapshots/`, locks in `locks/` and archived PostgreSQL WAL in `wal/`. See `crypto`
//! for the encryption scheme and the nonce argument, `pack` for the pack layout, `writer` for
//! crash safety and `wal` for the WAL archive's format and protocol.

pub mod backend;
pub mod cache;
pub mod canary;
pub mod chunker;
pub mod condemned;
pub mod crypto;
pub mod error;
pub mod holds;
pub mod id;
pub mod index;
pub mod keys;
pub mod lock;
pub mod object_lock;
pub mod pack;
pub mod repository;
pub mod shares;
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
pub use snapshot::{Snapshot, SnapshotFilter, Summary};
pub use tree::{Node, NodeKind, Tree, Xattr};

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

/// The user's name: `USER` or `LOGNAME`, else the account database's name for the real uid
/// (a daemon or cron job often has neither variable), else the uid itself.
pub fn user_name() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(account_name)
        .unwrap_or_else(|| unsafe { libc::getuid() }.to_string())
}

fn account_name() -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: passwd and result are plain out-parameters; buf outlives their use.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            libc::getuid(),
            &mut pw,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() || pw.pw_name.is_null() {
            return None;
        }
        Some(
            std::ffi::CStr::from_ptr(pw.pw_name)
                .to_string_lossy()
                .into_owned(),
        )
    }
}
