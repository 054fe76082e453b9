//! `check --credentials`: what the credential in use may do to objects that already exist,
//! found out on a canary object of its own rather than on anything of the repository.
//!
//! Protocol: create `canary/<random>` under the repository's prefix (create-only); write it
//! again with other bytes and read it back (overwrite); delete it and look for it (delete).
//! A refusal counts only when the store says *forbidden* (HTTP 403/401, or a local permission
//! error); any other failure is an error, never a verdict, so a network fault cannot make a
//! credential look append-only. A canary the credential could not delete stays behind, named
//! in the report (an append-only credential cannot tidy up; a bucket lifecycle rule can).

use bytes::Bytes;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::Serialize;

use crate::backend::{Backend, StoreBackend, runtime};
use crate::error::Result;

/// What the credential may do.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct CredentialProbe {
    pub location: String,
    /// The canary's key, relative to the repository's prefix.
    pub canary: String,
    pub can_create: bool,
    /// Replace an existing object's bytes (on a versioned bucket, the old version stays).
    pub can_overwrite: bool,
    /// Make an existing object disappear (on a versioned bucket, a delete marker hides it).
    pub can_delete: bool,
    /// Whether the canary is still there for someone else to remove.
    pub left_behind: bool,
}

impl CredentialProbe {
    /// Cannot delete or overwrite: what a backup host's credential should be.
    pub fn append_only(&self) -> bool {
        !self.can_delete && !self.can_overwrite
    }
}

/// Whether an error is the store refusing this credential (and not a fault).
fn forbidden(e: &object_store::Error) -> bool {
    match e {
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => true,
        other => {
            let text = other.to_string();
            [
                "AccessDenied",
                "403 Forbidden",
                "Permission denied",
                "permission denied",
            ]
            .iter()
            .any(|m| text.contains(m))
        }
    }
}

impl StoreBackend {
    /// Probe the credential in use on a canary of a new name (see the module note).
    pub fn probe_credentials(&self) -> Result<CredentialProbe> {
        self.probe_on(format!(
            "canary/bulwark-{}",
            crate::id::Id::random().short()
        ))
    }

    /// Probe on this host's own canary, `canary/host-<hostname>`, for a probe that runs again
    /// and again (`status`): a credential that cannot delete leaves one object, not one a run.
    /// A canary left by an earlier run counts as created.
    pub fn probe_credentials_of_host(&self) -> Result<CredentialProbe> {
        let host: String = crate::host_name()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.probe_on(format!("canary/host-{host}"))
    }

    fn probe_on(&self, name: String) -> Result<CredentialProbe> {
        let path = if self.prefix.is_empty() {
            StorePath::from(name.as_str())
        } else {
            StorePath::from(format!("{}/{name}", self.prefix))
        };
        if let Some(root) = &self.local_root {
            // object_store would make the folder with the umask's mode.
            use std::os::unix::fs::DirBuilderExt;
            let _ = std::fs::DirBuilder::new()
                .mode(0o700)
                .create(root.join("canary"));
        }
        let mut probe = CredentialProbe {
            location: self.location().to_string(),
            canary: name.clone(),
            can_create: false,
            can_overwrite: false,
            can_delete: false,
            left_behind: false,
        };
        let what = || format!("canary {name}");
        let put = |bytes: &'static [u8], mode: PutMode| {
            let opts = PutOptions {
                mode,
                ..Default::default()
            };
            runtime().block_on(self.store.put_opts(
                &path,
                PutPayload::from(Bytes::from_static(bytes)),
                opts,
            ))
        };
        match put(b"bulwark canary: created", PutMode::Create) {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => probe.can_create = true,
            Err(e) if forbidden(&e) => return Ok(probe),
            Err(e) => return Err(self.map_err(what(), e)),
        }
        const REPLACED: &[u8] = b"bulwark canary: overwritten";
        match put(REPLACED, PutMode::Overwrite) {
            Ok(_) => {
                let now = runtime()
                    .block_on(async { self.store.get(&path).await?.bytes().await })
                    .map_err(|e| self.map_err(what(), e))?;
                probe.can_overwrite = now.as_ref() == REPLACED;
            }
            Err(e) if forbidden(&e) => {}
            Err(e) => return Err(self.map_err(what(), e)),
        }
        match runtime().block_on(self.store.delete(&path)) {
            Ok(()) => match runtime().block_on(self.store.head(&path)) {
                Err(object_store::Error::NotFound { .. }) => probe.can_delete = true,
                Ok(_) => {}
                Err(e) => return Err(self.map_err(what(), e)),
            },
            Err(e) if forbidden(&e) => {}
            Err(e) => return Err(self.map_err(what(), e)),
        }
        probe.left_behind = !probe.can_delete;
        if let (Some(root), true) = (&self.local_root, probe.can_delete) {
            let _ = std::fs::remove_dir(root.join("canary"));
        }
        Ok(probe)
    }
}
