//! Where repository objects live. One interface, filled by the `object_store` crate, so a local
//! directory and an S3-compatible bucket behave the same to everything above.
//!
//! A local repository is owner-only, as restic's is: `init` makes its folders (and the root,
//! unless it existed) mode 0700 and every object is set to 0600 as soon as it is written. Key
//! slots are in there: with a copy anyone could attack the passphrase offline. object_store
//! writes with the process umask, so the object's mode is set after its rename into place; in
//! between it sits in a folder no one else can enter.

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{
    ClientOptions, GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode,
    PutOptions, PutPayload, RetryConfig,
};

use crate::error::{Error, Result};
use crate::object_lock::LockClient;

mod objects;
pub use objects::{OBJECT_PART_SIZE, ObjectAttributes, ObjectReader};

/// The kinds of objects in a repository, each in its own folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    Config,
    Key,
    Pack,
    Index,
    Snapshot,
    Lock,
    Condemned,
    Hold,
    /// Archived PostgreSQL WAL files (see `wal`).
    Wal,
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
            FileKind::Condemned => "condemned",
            FileKind::Hold => "holds",
            FileKind::Wal => "wal",
        }
    }
}

/// An object of a bucket, as its listing shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ObjectInfo {
    /// Relative to the bucket's prefix.
    pub key: String,
    pub size: u64,
    /// The store's entity tag (an MD5 for single-part S3 uploads; multipart ones end in `-N`);
    /// none for a directory.
    pub etag: Option<String>,
    pub modified: chrono::DateTime<chrono::Utc>,
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
    /// Every object of a kind with the time the store recorded for its write (its last
    /// modification: a file's mtime, an S3 object's `Last-Modified`). The writer's own clock
    /// plays no part in it, which is what `forget`'s check of claimed snapshot times relies on.
    fn list_modified(&self, kind: FileKind)
    -> Result<Vec<(String, chrono::DateTime<chrono::Utc>)>>;
    fn remove(&self, kind: FileKind, name: &str) -> Result<()>;
    /// Object Lock requests, for an S3 bucket; `None` for a store without locks.
    fn object_lock(&self) -> Option<&LockClient> {
        None
    }
    /// How many uploads are worth running at once.
    fn concurrency(&self) -> usize {
        2
    }
    /// Whether reads cost a request over the network (and are worth caching locally).
    fn remote(&self) -> bool {
        false
    }
    /// Delete partial writes that killed processes left behind, once older than `age` (so no
    /// running upload loses its file). Returns how many went. Object stores never show partial
    /// objects; their unfinished multipart uploads are for a bucket lifecycle rule to abort.
    fn remove_abandoned_writes(&self, _age: std::time::Duration) -> Result<usize> {
        Ok(0)
    }
}

/// Open the backend a repository location names: a directory path, `file://PATH`, or
/// `s3://BUCKET/PREFIX?region=R&endpoint=URL&allow_http=true`. With `create`, a missing local
/// directory is made (for `init`).
pub fn open_location(location: &str, create: bool) -> Result<Arc<dyn Backend>> {
    if let Some(rest) = location.strip_prefix("s3://") {
        return Ok(Arc::new(StoreBackend::s3(rest)?));
    }
    if location.contains("://") && !location.starts_with("file://") {
        return Err(Error::Invalid(format!(
            "unsupported repository location '{location}': give a directory, file://PATH or s3://BUCKET/PREFIX"
        )));
    }
    let path = location.strip_prefix("file://").unwrap_or(location);
    Ok(Arc::new(StoreBackend::local(
        std::path::Path::new(path),
        create,
    )?))
}

/// Run a future on the I/O runtime, from synchronous code.
pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
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
    pub(crate) store: Arc<dyn ObjectStore>,
    location: String,
    pub(crate) prefix: String,
    /// Objects larger than this go up in parts (object stores only).
    multipart_above: Option<usize>,
    concurrency: usize,
    /// The directory of a local repository, read directly (see `read_local`).
    pub(crate) local_root: Option<std::path::PathBuf>,
    /// Object Lock requests for an S3 bucket.
    locks: Option<LockClient>,
}

/// Owner-only modes of a local repository's folders and objects.
const LOCAL_DIR_MODE: u32 = 0o700;
const LOCAL_FILE_MODE: u32 = 0o600;

/// Object stores charge per request: only objects well above the default pack size go in parts.
const MULTIPART_ABOVE: usize = 32 * 1024 * 1024;
const PART_SIZE: usize = 16 * 1024 * 1024;

impl StoreBackend {
    /// A local directory. With `create`, the directory is made if missing (for `init`).
    pub fn local(dir: &std::path::Path, create: bool) -> Result<StoreBackend> {
        let location = dir.display().to_string();
        if create {
            create_local_folders(dir)
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
            prefix: String::new(),
            multipart_above: None,
            concurrency: 2,
            local_root: Some(dir.to_path_buf()),
            locks: None,
        })
    }

    /// Lock an object just written, in a repository with Object Lock. An object that existed
    /// keeps its lock: the maintenance step extends what snapshots need.
    fn lock_written(&self, kind: FileKind, name: &str) -> Result<()> {
        match &self.locks {
            // Repository locks are rewritten every few minutes and mean nothing once stale.
            Some(locks) if kind != FileKind::Lock => locks.lock_written(&object_key(kind, name)),
            _ => Ok(()),
        }
    }

    /// Make an object just written owner-only (see the module note). File systems without
    /// Unix modes (FAT, some network mounts) refuse: that is said once, and the write stands.
    fn restrict_local(&self, kind: FileKind, name: &str) {
        let Some(root) = &self.local_root else {
            return;
        };
        use std::os::unix::fs::PermissionsExt;
        static WARNED: std::sync::Once = std::sync::Once::new();
        let path = root.join(self.path(kind, name).as_ref());
        if let Err(e) =
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(LOCAL_FILE_MODE))
        {
            WARNED.call_once(|| {
                tracing::warn!("cannot make {} owner-only: {e}", path.display());
            });
        }
    }

    /// An S3-compatible bucket. `spec` is `BUCKET/PREFIX?query` (the part after `s3://`).
    /// Credentials come from the standard AWS environment variables or the shared credentials
    /// file, never from the URL.
    pub fn s3(spec: &str) -> Result<StoreBackend> {
        let (path, query) = spec.split_once('?').unwrap_or((spec, ""));
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.is_empty() {
            return Err(Error::Invalid(
                "s3:// location without a bucket name".into(),
            ));
        }
        let mut client_options = ClientOptions::new()
            .with_connect_timeout(std::time::Duration::from_secs(10))
            .with_timeout(std::time::Duration::from_secs(120));
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let mut endpoint = None;
        let mut allow_http = false;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            builder = match k {
                "region" => builder.with_region(v),
                "endpoint" => {
                    endpoint = Some(v.to_string());
                    builder
                        .with_endpoint(v)
                        .with_virtual_hosted_style_request(false)
                }
                "allow_http" => {
                    allow_http = v == "true" || v == "1";
                    client_options = client_options.with_allow_http(allow_http);
                    builder
                }
                other => {
                    return Err(Error::Invalid(format!(
                        "unknown s3 parameter '{other}': use region, endpoint, allow_http"
                    )));
                }
            };
        }
        if let Some(e) = endpoint.as_deref().filter(|e| e.starts_with("http://"))
            && !allow_http
        {
            return Err(Error::Invalid(format!(
                "the endpoint {e} is plain HTTP, which is refused unless the URL says so: add &allow_http=true (credentials and data then cross the network unencrypted)"
            )));
        }
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
            && let Some((id, secret, token)) = shared_credentials()
        {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
            if let Some(t) = token {
                builder = builder.with_token(t);
            }
        }
        let region = builder
            .get_config_value(&AmazonS3ConfigKey::Region)
            .unwrap_or_else(|| "us-east-1".into());
        let store = Arc::new(
            builder
                .with_client_options(client_options.clone())
                .with_retry(RetryConfig {
                    max_retries: 8,
                    retry_timeout: std::time::Duration::from_secs(180),
                    ..Default::default()
                })
                .build()
                .map_err(|e| Error::Backend(format!("s3://{bucket}: {}", one_line(&e))))?,
        );
        let prefix = prefix.trim_matches('/').to_string();
        let locks = LockClient::new(
            store.clone(),
            &client_options,
            endpoint.as_deref(),
            bucket,
            &region,
            &prefix,
        )?;
        let location = match endpoint {
            Some(e) => format!("s3://{bucket}/{prefix} at {e}"),
            None => format!("s3://{bucket}/{prefix}"),
        };
        Ok(StoreBackend {
            store,
            location,
            prefix,
            multipart_above: Some(MULTIPART_ABOVE),
            concurrency: 8,
            local_root: None,
            locks: Some(locks),
        })
    }

    /// A bucket (or prefix) of any objects, not a repository: `s3://BUCKET/PREFIX?…`, `file://DIR`
    /// or a directory. Nothing is created.
    pub fn bucket(location: &str) -> Result<StoreBackend> {
        if let Some(rest) = location.strip_prefix("s3://") {
            return StoreBackend::s3(rest);
        }
        let dir = std::path::Path::new(location.strip_prefix("file://").unwrap_or(location));
        if !dir.is_dir() {
            return Err(Error::Invalid(format!(
                "{location}: no such directory or bucket"
            )));
        }
        StoreBackend::local(dir, false)
    }

    /// Every object under the prefix, with keys relative to it, sorted by key.
    pub fn list_objects(&self) -> Result<Vec<ObjectInfo>> {
        let prefix = (!self.prefix.is_empty()).then(|| StorePath::from(self.prefix.as_str()));
        let metas: Vec<_> = runtime()
            .block_on(self.store.list(prefix.as_ref()).try_collect::<Vec<_>>())
            .map_err(|e| self.map_err("listing".into(), e))?;
        let strip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let mut out: Vec<ObjectInfo> = metas
            .into_iter()
            .map(|m| ObjectInfo {
                key: m.location.as_ref().get(strip..).unwrap_or("").to_string(),
                size: m.size,
                // A directory's tags come from inodes and times, not content: two copies of
                // one file would differ. Directories are compared by size.
                etag: if self.local_root.is_some() {
                    None
                } else {
                    m.e_tag
                },
                modified: m.last_modified,
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn path(&self, kind: FileKind, name: &str) -> StorePath {
        let rel = object_key(kind, name);
        if self.prefix.is_empty() {
            StorePath::from(rel)
        } else {
            StorePath::from(format!("{}/{rel}", self.prefix))
        }
    }

    /// Every object of one kind, in one listing.
    fn list_kind(&self, kind: FileKind) -> Result<Vec<ObjectMeta>> {
        let prefix = self.path(kind, "");
        let prefix = StorePath::from(prefix.as_ref().trim_end_matches('/'));
        runtime()
            .block_on(self.store.list(Some(&prefix)).try_collect::<Vec<_>>())
            .map_err(|e| self.map_err(format!("listing {}", kind.dir()), e))
    }

    async fn put_parts(&self, path: &StorePath, data: Bytes) -> object_store::Result<()> {
        let mut upload = self.store.put_multipart(path).await?;
        let parts: Vec<_> = (0..data.len())
            .step_by(PART_SIZE)
            .map(|start| {
                upload.put_part(PutPayload::from(
                    data.slice(start..(start + PART_SIZE).min(data.len())),
                ))
            })
            .collect();
        match futures::future::try_join_all(parts).await {
            Ok(_) => upload.complete().await.map(|_| ()),
            Err(e) => {
                let _ = upload.abort().await;
                Err(e)
            }
        }
    }

    /// Read part of a local object with one `pread` on the calling thread. object_store hands
    /// every local read to a blocking-thread pool and back, and for the many small tree reads the
    /// hand-offs cost more than the reads: `check` of a repository of 15,700 directories took
    /// 1.1-1.6 s that way and 0.35 s this way.
    fn read_local(
        &self,
        root: &std::path::Path,
        kind: FileKind,
        name: &str,
        range: Range<u64>,
    ) -> Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let path = root.join(self.path(kind, name).as_ref());
        let what = || describe(kind, name);
        let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound { what: what() },
            _ => Error::io(format!("cannot open {}", path.display()), e),
        })?;
        // The range comes from an index entry: check it against the file before allocating it.
        let size = file
            .metadata()
            .map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?
            .len();
        if range.start > range.end || range.end > size {
            return Err(Error::corrupt(what(), "shorter than its index says"));
        }
        let mut buf = vec![0u8; (range.end - range.start) as usize];
        file.read_exact_at(&mut buf, range.start)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => {
                    Error::corrupt(what(), "shorter than its index says")
                }
                _ => Error::io(format!("cannot read {}", path.display()), e),
            })?;
        Ok(Bytes::from(buf))
    }

    pub(crate) fn map_err(&self, what: String, e: object_store::Error) -> Error {
        match e {
            object_store::Error::NotFound { .. } => Error::NotFound { what },
            other => Error::Backend(format!("{what} at {}: {}", self.location, one_line(&other))),
        }
    }
}

/// Error chains from the HTTP stack span lines and repeat themselves; the CLI prints one line,
/// led by what a person can act on.
fn one_line(e: &dyn std::error::Error) -> String {
    let mut chain = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        chain.push(s.to_string());
        source = s.source();
    }
    let all = chain.join(" ");
    let cause = if all.contains("NoSuchBucket") {
        "the bucket does not exist"
    } else if [
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "403 Forbidden",
    ]
    .iter()
    .any(|m| all.contains(m))
    {
        "access denied: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket policy"
    } else if [
        "Connection refused",
        "dns error",
        "tcp connect",
        "connection error",
    ]
    .iter()
    .any(|m| all.contains(m))
    {
        "cannot reach the storage endpoint"
    } else {
        ""
    };
    // The innermost message is the specific one; outer layers repeat it with context.
    let detail: String = chain
        .last()
        .map(|s| {
            s.lines()
                .next()
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect()
        })
        .unwrap_or_default();
    if cause.is_empty() {
        detail
    } else {
        format!("{cause} ({detail})")
    }
}

/// Keys from `~/.aws/credentials` (or `AWS_SHARED_CREDENTIALS_FILE`), profile `AWS_PROFILE` or
/// `default`, for when the environment names none.
fn shared_credentials() -> Option<(String, String, Option<String>)> {
    let file = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".aws/credentials"))
        })?;
    let text = std::fs::read_to_string(file).ok()?;
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let (mut in_profile, mut id, mut secret, mut token) = (false, None, None, None);
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
        } else if in_profile && let Some((k, v)) = line.split_once('=') {
            let v = Some(v.trim().to_string());
            match k.trim() {
                "aws_access_key_id" => id = v,
                "aws_secret_access_key" => secret = v,
                "aws_session_token" => token = v,
                _ => {}
            }
        }
    }
    Some((id?, secret?, token))
}

/// A local repository's root (0700 when made here; an existing one keeps its mode) and every
/// folder objects go into, `data/00` to `data/ff` included, so object_store never makes one
/// with the umask's mode.
fn create_local_folders(root: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true).mode(LOCAL_DIR_MODE);
    builder.create(root)?;
    for kind in [
        FileKind::Key,
        FileKind::Index,
        FileKind::Snapshot,
        FileKind::Lock,
        FileKind::Condemned,
        FileKind::Hold,
    ] {
        builder.create(root.join(kind.dir()))?;
    }
    for byte in 0..=255u8 {
        builder.create(root.join(FileKind::Pack.dir()).join(format!("{byte:02x}")))?;
    }
    Ok(())
}

/// Where an object lies, relative to the repository's root or prefix.
pub fn object_key(kind: FileKind, name: &str) -> String {
    match kind {
        FileKind::Config => name.to_string(),
        FileKind::Pack => format!("data/{}/{name}", &name[..2.min(name.len())]),
        _ => format!("{}/{name}", kind.dir()),
    }
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
        let path = self.path(kind, name);
        if self.multipart_above.is_some_and(|limit| data.len() > limit) {
            // Only packs grow this large, and they are named by their content: writing one
            // again can only write the same bytes, so create-only needs no precondition here.
            runtime()
                .block_on(self.put_parts(&path, data))
                .map_err(|e| self.map_err(describe(kind, name), e))?;
            self.lock_written(kind, name)?;
            return Ok(Written::Created);
        }
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match runtime().block_on(self.store.put_opts(&path, PutPayload::from(data), opts)) {
            Ok(_) => {
                self.restrict_local(kind, name);
                self.lock_written(kind, name)?;
                Ok(Written::Created)
            }
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Written::Existed),
            // Writing never needs anything to exist but the bucket.
            Err(object_store::Error::NotFound { .. }) => Err(Error::Backend(format!(
                "cannot write {} at {}: the bucket does not exist",
                describe(kind, name),
                self.location
            ))),
            Err(e) => Err(self.map_err(describe(kind, name), e)),
        }
    }

    fn read(&self, kind: FileKind, name: &str) -> Result<Bytes> {
        let path = self.path(kind, name);
        runtime()
            .block_on(async { self.store.get(&path).await?.bytes().await })
            .map_err(|e| self.map_err(describe(kind, name), e))
    }

    fn read_range(&self, kind: FileKind, name: &str, range: Range<u64>) -> Result<Bytes> {
        if let Some(root) = &self.local_root {
            return self.read_local(root, kind, name, range);
        }
        let path = self.path(kind, name);
        let want = range.end - range.start;
        let bytes = runtime()
            .block_on(self.store.get_range(&path, range))
            .map_err(|e| self.map_err(describe(kind, name), e))?;
        if bytes.len() as u64 != want {
            return Err(Error::corrupt(
                describe(kind, name),
                "shorter than its index says",
            ));
        }
        Ok(bytes)
    }

    fn read_tail(&self, kind: FileKind, name: &str, len: u64) -> Result<Bytes> {
        let path = self.path(kind, name);
        let opts = GetOptions {
            range: Some(GetRange::Suffix(len)),
            ..Default::default()
        };
        runtime()
            .block_on(async { self.store.get_opts(&path, opts).await?.bytes().await })
            .map_err(|e| self.map_err(describe(kind, name), e))
    }

    fn list(&self, kind: FileKind) -> Result<Vec<(String, u64)>> {
        Ok(self
            .list_kind(kind)?
            .into_iter()
            .filter_map(|m| Some((m.location.filename()?.to_string(), m.size)))
            .collect())
    }

    fn list_modified(
        &self,
        kind: FileKind,
    ) -> Result<Vec<(String, chrono::DateTime<chrono::Utc>)>> {
        Ok(self
            .list_kind(kind)?
            .into_iter()
            .filter_map(|m| Some((m.location.filename()?.to_string(), m.last_modified)))
            .collect())
    }

    fn remove(&self, kind: FileKind, name: &str) -> Result<()> {
        let path = self.path(kind, name);
        match runtime().block_on(self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.map_err(describe(kind, name), e)),
        }
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    fn object_lock(&self) -> Option<&LockClient> {
        self.locks.as_ref()
    }

    fn remote(&self) -> bool {
        self.multipart_above.is_some()
    }

    fn remove_abandoned_writes(&self, age: std::time::Duration) -> Result<usize> {
        let Some(root) = &self.local_root else {
            return Ok(0);
        };
        // object_store writes `NAME#N` and renames it to NAME when complete.
        let mut removed = 0;
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            let entries = std::fs::read_dir(&dir)
                .map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
            for entry in entries.flatten() {
                // file_type comes with the listing; only partial writes cost a stat.
                let Ok(file_type) = entry.file_type() else {
                    continue;
                };
                if file_type.is_dir() {
                    dirs.push(entry.path());
                    continue;
                }
                if !entry.file_name().as_encoded_bytes().contains(&b'#') {
                    continue;
                }
                let stale = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|elapsed| elapsed > age);
                if stale && std::fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}
