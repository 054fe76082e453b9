//! The daemon's jobs as people see them: what runs now, since when and for what, and how the
//! recent ones ended. The ledger holds the evidence; this is the live view of it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::lease::Lease;

/// How many finished jobs the live view keeps.
const RECENT: usize = 200;

#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: u64,
    pub dataset: String,
    pub repository: String,
    /// `schedule`, or `api:CALLER` for a run asked for through the API.
    pub trigger: String,
    pub started: DateTime<Utc>,
    pub finished: Option<DateTime<Utc>>,
    pub ok: Option<bool>,
    pub summary: Option<String>,
    pub lease: Option<Lease>,
}

#[derive(Default)]
pub struct Jobs {
    next: AtomicU64,
    running: Mutex<BTreeMap<u64, Job>>,
    recent: Mutex<VecDeque<Job>>,
}

impl Jobs {
    pub fn start(
        &self,
        dataset: &str,
        repository: &str,
        trigger: &str,
        lease: Option<Lease>,
        now: DateTime<Utc>,
    ) -> Job {
        let job = Job {
            id: self.next.fetch_add(1, Ordering::Relaxed) + 1,
            dataset: dataset.to_string(),
            repository: repository.to_string(),
            trigger: trigger.to_string(),
            started: now,
            finished: None,
            ok: None,
            summary: None,
            lease,
        };
        lock(&self.running).insert(job.id, job.clone());
        job
    }

    pub fn finish(&self, id: u64, ok: bool, summary: String, now: DateTime<Utc>) -> Option<Job> {
        let mut job = lock(&self.running).remove(&id)?;
        job.finished = Some(now);
        job.ok = Some(ok);
        job.summary = Some(summary);
        let mut recent = lock(&self.recent);
        recent.push_front(job.clone());
        recent.truncate(RECENT);
        Some(job)
    }

    pub fn running(&self) -> Vec<Job> {
        lock(&self.running).values().cloned().collect()
    }

    pub fn recent(&self) -> Vec<Job> {
        lock(&self.recent).iter().cloned().collect()
    }

    /// Whether a job of `dataset` runs now.
    pub fn runs(&self, dataset: &str) -> bool {
        lock(&self.running).values().any(|j| j.dataset == dataset)
    }

    /// How many jobs run now on `repository`.
    pub fn on(&self, repository: &str) -> usize {
        lock(&self.running)
            .values()
            .filter(|j| j.repository == repository)
            .count()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
