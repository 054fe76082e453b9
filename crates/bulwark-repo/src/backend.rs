//! Where repository objects live. One interface, filled by the `object_store` crate, so a local
//! directory and an S3-compatible bucket behave the same to everything above.

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
};

use crate::error::{Error, Result};

/// The kinds of objects in a repository, each in its own folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    Config,
    Key,
    Pack,
    Index,
    Snapshot,
    Lock,
}

impl FileKind {
    pub fn dir(self) -> &'static str {
        match self {
            FileKind::Config => "",
            FileKind::Key => "keys",
            FileKind::Pack => "data",
            FileKind::Index => "index",
            FileKind::Snapshot => "snapshots",
            FileKind::Lock => "locks",
        }
    }
}

/// Whether a create-only write made a new object or found one already there.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    Created,
    Existed,
}

pub trait Backend: Send + Sync {
    /// A human-readable location, without credentials.
    fn location(&self) -> &str;
    /// Write an object once. Objects are never overwritten: an existing name is reported, not replaced.
    fn create(&self, kind: FileKind, name: &str, data: Bytes) -> Result<Written>;
    fn read(&self, kind: FileKind, name: &str) -> Result<Bytes>;
    fn read_range(&self, kind: FileKind, name: &str, range: Range<u64>) -> Result<Bytes>;
    /// The last `len` bytes (or the whole object when shorter).
    fn read_tail(&self, kind: FileKind, name: &str, len: u64) -> Result<Bytes>;
    /// Every object of a kind: `(name, size)`.
    fn list(&self, kind: FileKind) -> Result<Vec<(String, u64)>>;
    fn remove(&self, kind: FileKind, name: &str) -> Result<()>;
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bulwark-io")
            .enable_all()
            .build()
            .expect("cannot start the I/O runtime")
    })
}

/// A backend over any `object_store` implementation.
pub struct StoreBackend {
    store: Arc<dyn ObjectStore>,
    location: String,
}

impl StoreBackend {
    /// A local directory. With `create`, the directory is made if missing (for `init`).
    pub fn local(dir: &std::path::Path, create: bool) -> Result<StoreBackend> {
        let location = dir.display().to_string();
        if create {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("cannot create {location}"), e))?;
        } else if !dir.is_dir() {
            return Err(Error::NoRepository { location });
        }
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| Error::Backend(format!("{location}: {e}")))?
            .with_fsync(true);
        Ok(StoreBackend {
            store: Arc::new(store),
            location,
        })
    }

    fn path(kind: FileKind, name: &str) -> StorePath {
        match kind {
            FileKind::Config => StorePath::from(name),
            FileKind::Pack => StorePath::from(format!("data/{}/{name}", &name[..2.min(name.len())])),
            _ => StorePath::from(format!("{}/{name}", kind.dir())),
        }
    }

    fn map_err(&self, what: String, e: object_store::Error) -> Error {
        match e {
            object_store::Error::NotFound { .. } => Error::NotFound { what },
            other => Error::Backend(format!("{what} at {}: {}", self.location, one_line(&other))),
        }
    }
}

/// Error chains from the HTTP stack span lines; the CLI prints one.
fn one_line(e: &dyn std::error::Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

fn describe(kind: FileKind, name: &str) -> String {
    match kind {
        FileKind::Config => "config".to_string(),
        _ => format!("{}/{}", kind.dir(), name),
    }
}

impl Backend for StoreBackend {
    fn location(&self) -> &str {
        &self.location
    }

    fn create(&self, kind: FileKind, name: &str, data: Bytes) -> Result<Written> {
        let path = Self::path(kind, name);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match runtime().block_on(self.store.put_opts(&path, PutPayload::from(data), opts)) {
            Ok(_) => Ok(Written::Created),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Written::Existed),
            Err(e) => Err(self.map_err(describe(kind, name), e)),
        }
    }

    fn read(&self, kind: FileKind, name: &str) -> Result<Bytes> {
        let path = Self::path(kind, name);
        runtime()
            .block_on(async { self.store.get(&path).await?.bytes().await })
            .map_err(|e| self.map_err(describe(kind, name), e))
    }

    fn read_range(&self, kind: FileKind, name: &str, range: Range<u64>) -> Result<Bytes> {
        let path = Self::path(kind, name);
        let want = range.end - range.start;
        let bytes = runtime()
            .block_on(self.store.get_range(&path, range))
            .map_err(|e| self.map_err(describe(kind, name), e))?;
        if bytes.len() as u64 != want {
            return Err(Error::corrupt(describe(kind, name), "shorter than its index says"));
        }
        Ok(bytes)
    }

    fn read_tail(&self, kind: FileKind, name: &str, len: u64) -> Result<Bytes> {
        let path = Self::path(kind, name);
        let opts = GetOptions {
            range: Some(GetRange::Suffix(len)),
            ..Default::default()
        };
        runtime()
            .block_on(async { self.store.get_opts(&path, opts).await?.bytes().await })
            .map_err(|e| self.map_err(describe(kind, name), e))
    }

    fn list(&self, kind: FileKind) -> Result<Vec<(String, u64)>> {
        let prefix = StorePath::from(kind.dir());
        let metas: Vec<_> = runtime()
            .block_on(self.store.list(Some(&prefix)).try_collect::<Vec<_>>())
            .map_err(|e| self.map_err(format!("listing {}", kind.dir()), e))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| Some((m.location.filename()?.to_string(), m.size)))
            .collect())
    }

    fn remove(&self, kind: FileKind, name: &str) -> Result<()> {
        let path = Self::path(kind, name);
        match runtime().block_on(self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.map_err(describe(kind, name), e)),
        }
    }
}
