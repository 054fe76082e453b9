//! Repository locks. Backups, restores, copies and checks share the repository; `prune` takes a
//! maintenance lock that excludes only other maintenance (it never makes backups wait, see
//! `bulwark-ops`'s prune for the protocol); index repair and key removal take it exclusively.
//! A lock is an object in `locks/` that its holder re-creates every few minutes under a stable
//! holder id; one not refreshed for `STALE_AFTER`, or held by a process on this host that no
//! longer runs, is stale and ignored. A holder that could not refresh for that long must stop
//! before writing anything that others could rely on (`LockGuard::ensure_fresh`).
//!
//! Every lock this process holds is also listed in a process-wide registry, so a process that
//! must quit at once (a second Ctrl-C) removes its locks first with [`release_all_held`]
//! instead of leaving them to block others until they go stale.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, FileKind};
use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::id::Id;

pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LockKind {
    /// Reads and adds: backup, copy, restore, check.
    Shared,
    /// Removes unreferenced data under the prune protocol: excludes other maintenance only.
    Maintenance,
    /// Excludes everyone.
    Exclusive,
}

impl LockKind {
    fn conflicts_with(self, other: LockKind) -> bool {
        use LockKind::*;
        matches!(
            (self, other),
            (Exclusive, _) | (_, Exclusive) | (Maintenance, Maintenance)
        )
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct LockInfo {
    pub time: DateTime<Utc>,
    pub host: String,
    pub user: String,
    pub pid: u32,
    pub kind: LockKind,
    /// Stays the same across refreshes, so others can tell a process is still the same one.
    pub holder: Id,
}

impl LockInfo {
    pub fn is_stale(&self) -> bool {
        let age = Utc::now().signed_duration_since(self.time);
        if age.to_std().map(|a| a > STALE_AFTER).unwrap_or(false) {
            return true;
        }
        self.host == crate::host_name() && !process_alive(self.pid)
    }

    pub fn describe(&self) -> String {
        format!(
            "{} by {}@{} (pid {}) at {}",
            match self.kind {
                LockKind::Exclusive => "exclusively",
                LockKind::Maintenance => "for maintenance",
                LockKind::Shared => "shared",
            },
            self.user,
            self.host,
            self.pid,
            self.time.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

fn process_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

pub fn read_lock(backend: &dyn Backend, key: &MasterKey, name: &str) -> Result<LockInfo> {
    let stored = backend.read(FileKind::Lock, name)?;
    let plain = key.open_object(&format!("locks/{name}"), &stored)?;
    serde_json::from_slice(&plain).map_err(|e| Error::corrupt(format!("locks/{name}"), e))
}

fn write_lock(backend: &dyn Backend, key: &MasterKey, info: &LockInfo) -> Result<String> {
    let name = Id::random().to_hex();
    let plain = serde_json::to_vec(info).expect("locks serialise");
    backend.create(FileKind::Lock, &name, Bytes::from(key.seal_object(&plain)))?;
    Ok(name)
}

/// Held while the lock lives; dropping it stops the refresher and removes the lock object.
pub struct LockGuard {
    stop: Arc<(Mutex<bool>, Condvar)>,
    refresher: Option<JoinHandle<()>>,
    last_refresh: Arc<Mutex<std::time::Instant>>,
    holder: Id,
}

/// A lock this process holds: where it is, and the name of its current object.
struct Held {
    holder: Id,
    backend: Arc<dyn Backend>,
    current: Arc<Mutex<String>>,
}

static HELD: Mutex<Vec<Held>> = Mutex::new(Vec::new());

/// Remove every lock object this process holds, for a process about to exit without unwinding
/// (the guards' own drops will not run). Returns how many were removed.
pub fn release_all_held() -> usize {
    let held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    held.iter()
        .filter(|h| {
            let name = h.current.lock().unwrap_or_else(|p| p.into_inner()).clone();
            h.backend.remove(FileKind::Lock, &name).is_ok()
        })
        .count()
}

impl LockGuard {
    pub fn acquire(
        backend: Arc<dyn Backend>,
        key: &MasterKey,
        kind: LockKind,
    ) -> Result<LockGuard> {
        let info = LockInfo {
            time: Utc::now(),
            host: crate::host_name(),
            user: crate::user_name(),
            pid: std::process::id(),
            kind,
            holder: Id::random(),
        };
        let mine = write_lock(backend.as_ref(), key, &info)?;
        if let Err(e) = check_conflicts(backend.as_ref(), key, &mine, kind) {
            let _ = backend.remove(FileKind::Lock, &mine);
            return Err(e);
        }
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let last_refresh = Arc::new(Mutex::new(std::time::Instant::now()));
        let holder = info.holder;
        let current = Arc::new(Mutex::new(mine));
        HELD.lock().expect("held locks").push(Held {
            holder,
            backend: backend.clone(),
            current: current.clone(),
        });
        let refresher = {
            let (stop, key, last) = (stop.clone(), key.clone(), last_refresh.clone());
            std::thread::spawn(move || {
                refresh_until_stopped(backend, key, info, current, stop, last)
            })
        };
        Ok(LockGuard {
            stop,
            refresher: Some(refresher),
            last_refresh,
            holder,
        })
    }

    pub fn holder(&self) -> Id {
        self.holder
    }

    /// Fail if the lock may have gone stale in others' eyes (refreshes failed for too long):
    /// maintenance may then have treated this process as gone.
    pub fn ensure_fresh(&self) -> Result<()> {
        let age = self.last_refresh.lock().expect("refresh time").elapsed();
        if age + REFRESH_EVERY >= STALE_AFTER {
            return Err(Error::Backend(format!(
                "the repository lock could not be refreshed for {} s; stopping before writing the snapshot",
                age.as_secs()
            )));
        }
        Ok(())
    }
}

/// Every lock that is not stale, with its object name.
pub fn live_locks(backend: &dyn Backend, key: &MasterKey) -> Result<Vec<(String, LockInfo)>> {
    let mut out = Vec::new();
    for (name, _) in backend.list(FileKind::Lock)? {
        match read_lock(backend, key, &name) {
            Ok(info) if !info.is_stale() => out.push((name, info)),
            Ok(_) => {}
            // Removed meanwhile by its holder, or unreadable: neither can block anyone.
            Err(Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!("ignoring unreadable lock {name}: {e}"),
        }
    }
    Ok(out)
}

/// Remove lock objects: stale ones (see [`LockInfo::is_stale`]), or with `all` every one,
/// including those of running processes (restic's `unlock --remove-all`). Returns a
/// description of each lock removed.
pub fn remove_locks(backend: &dyn Backend, key: &MasterKey, all: bool) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for (name, _) in backend.list(FileKind::Lock)? {
        let what = match read_lock(backend, key, &name) {
            Ok(info) if all || info.is_stale() => info.describe(),
            Ok(_) => continue,
            Err(Error::NotFound { .. }) => continue,
            Err(e) if all => format!("unreadable lock {name} ({e})"),
            Err(e) => {
                tracing::warn!("leaving unreadable lock {name}: {e}");
                continue;
            }
        };
        match backend.remove(FileKind::Lock, &name) {
            Ok(()) | Err(Error::NotFound { .. }) => removed.push(what),
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

fn check_conflicts(
    backend: &dyn Backend,
    key: &MasterKey,
    mine: &str,
    kind: LockKind,
) -> Result<()> {
    for (name, other) in live_locks(backend, key)? {
        if name != mine && kind.conflicts_with(other.kind) {
            return Err(Error::Locked {
                by: other.describe(),
            });
        }
    }
    Ok(())
}

fn refresh_until_stopped(
    backend: Arc<dyn Backend>,
    key: MasterKey,
    mut info: LockInfo,
    current: Arc<Mutex<String>>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    last_refresh: Arc<Mutex<std::time::Instant>>,
) {
    let (flag, signal) = &*stop;
    let mut stopped = flag.lock().expect("lock flag");
    // The flag is checked before every wait: a stop signalled before this thread first waits
    // must not be missed.
    while !*stopped {
        let (guard, timeout) = signal
            .wait_timeout(stopped, REFRESH_EVERY)
            .expect("lock flag");
        stopped = guard;
        if *stopped {
            break;
        }
        if timeout.timed_out() {
            info.time = Utc::now();
            match write_lock(backend.as_ref(), &key, &info) {
                Ok(fresh) => {
                    let old = std::mem::replace(&mut *current.lock().expect("lock name"), fresh);
                    let _ = backend.remove(FileKind::Lock, &old);
                    *last_refresh.lock().expect("refresh time") = std::time::Instant::now();
                }
                Err(e) => tracing::warn!("could not refresh the repository lock: {e}"),
            }
        }
    }
    let current = current.lock().expect("lock name").clone();
    if let Err(e) = backend.remove(FileKind::Lock, &current) {
        tracing::warn!("could not remove lock {current}: {e}");
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        *self.stop.0.lock().expect("lock flag") = true;
        self.stop.1.notify_all();
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        HELD.lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|h| h.holder != self.holder);
    }
}
