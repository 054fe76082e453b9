//! Prometheus metrics (OpenMetrics text): the state of every commitment as a gauge per dataset and
//! commitment, recovery points and restore tests per dataset, replica lag, and the daemon's own
//! jobs. Labels are dataset, repository and commitment names only, never a URL or a secret.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use bulwark_policy::compliance::Verdict;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::view::View;

type FloatGauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DatasetLabel {
    pub dataset: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackupLabels {
    pub dataset: String,
    pub repository: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReplicaLabels {
    pub dataset: String,
    pub replica: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommitmentLabels {
    /// Empty for commitments of the whole platform (the ledger).
    pub dataset: String,
    pub commitment: String,
}

fn job_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    last_backup: Family<BackupLabels, FloatGauge>,
    exposure: Family<DatasetLabel, FloatGauge>,
    test_success: Family<DatasetLabel, Gauge>,
    test_time: Family<DatasetLabel, FloatGauge>,
    test_duration: Family<DatasetLabel, FloatGauge>,
    replica_lag: Family<ReplicaLabels, FloatGauge>,
    commitment: Family<CommitmentLabels, Gauge>,
    job_duration: Family<DatasetLabel, Histogram, fn() -> Histogram>,
    job_failures: Family<DatasetLabel, Counter>,
    jobs_running: Gauge,
    reload_failures: Counter,
    /// Serialises refreshes: a reader never sees half of one.
    refreshing: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            last_backup: Family::default(),
            exposure: Family::default(),
            test_success: Family::default(),
            test_time: Family::default(),
            test_duration: Family::default(),
            replica_lag: Family::default(),
            commitment: Family::default(),
            job_duration: Family::new_with_constructor(job_histogram),
            job_failures: Family::default(),
            jobs_running: Gauge::default(),
            reload_failures: Counter::default(),
            refreshing: Mutex::new(()),
            registry: Registry::default(),
        };
        registry.register(
            "bulwark_last_backup_timestamp_seconds",
            "Time of the newest snapshot of the dataset in the repository",
            m.last_backup.clone(),
        );
        registry.register(
            "bulwark_rpo_exposure_seconds",
            "Age of the newest backup of the dataset in its primary repository",
            m.exposure.clone(),
        );
        registry.register(
            "bulwark_restore_test_last_success",
            "1 when the dataset's last restore test passed, 0 when it failed",
            m.test_success.clone(),
        );
        registry.register(
            "bulwark_restore_test_last_timestamp_seconds",
            "When the dataset's last restore test finished",
            m.test_time.clone(),
        );
        registry.register(
            "bulwark_restore_test_duration_seconds",
            "Measured restore time of the dataset's last passed restore test",
            m.test_duration.clone(),
        );
        registry.register(
            "bulwark_replica_lag_seconds",
            "How far the replica's newest snapshot of the dataset is behind the primary's",
            m.replica_lag.clone(),
        );
        registry.register(
            "bulwark_commitment_state",
            "State of each commitment: 0 met, 1 at risk, 2 breached",
            m.commitment.clone(),
        );
        registry.register(
            "bulwark_job_duration_seconds",
            "Duration of the daemon's jobs",
            m.job_duration.clone(),
        );
        registry.register(
            "bulwark_job_failures",
            "Jobs that ended with a failed step",
            m.job_failures.clone(),
        );
        registry.register(
            "bulwark_jobs_running",
            "Jobs running now",
            m.jobs_running.clone(),
        );
        registry.register(
            "bulwark_config_reload_failures",
            "Policy file reloads refused because the new file was invalid",
            m.reload_failures.clone(),
        );
        Metrics { registry, ..m }
    }
}

fn level(v: Verdict) -> i64 {
    match v {
        Verdict::Met => 0,
        Verdict::AtRisk => 1,
        Verdict::Breached => 2,
    }
}

impl Metrics {
    /// Set every state gauge from a fresh view.
    pub fn update(&self, view: &View) {
        let _one = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
        for f in [
            &self.last_backup as &dyn Clear,
            &self.exposure,
            &self.test_success,
            &self.test_time,
            &self.test_duration,
            &self.replica_lag,
            &self.commitment,
        ] {
            f.clear_all();
        }
        for (name, d) in &view.status.datasets {
            let label = DatasetLabel {
                dataset: name.clone(),
            };
            let facts = &d.facts;
            if let Some(t) = facts.last_backup {
                let repository = view
                    .datasets
                    .get(name)
                    .map(|v| v.repository.clone())
                    .unwrap_or_default();
                self.last_backup
                    .get_or_create(&BackupLabels {
                        dataset: name.clone(),
                        repository,
                    })
                    .set(t.timestamp_millis() as f64 / 1000.0);
                self.exposure
                    .get_or_create(&label)
                    .set((view.at - t).num_milliseconds() as f64 / 1000.0);
            }
            if let Some(t) = &facts.last_restore_test {
                self.test_success
                    .get_or_create(&label)
                    .set(i64::from(t.passed));
                self.test_time
                    .get_or_create(&label)
                    .set(t.time.timestamp_millis() as f64 / 1000.0);
            }
            if let Some(t) = &facts.last_passed_restore_test {
                self.test_duration.get_or_create(&label).set(t.duration_s);
            }
            if let Some(v) = view.datasets.get(name) {
                for r in &v.replicas {
                    if let Some(lag) = r.lag_seconds {
                        self.replica_lag
                            .get_or_create(&ReplicaLabels {
                                dataset: name.clone(),
                                replica: r.repository.clone(),
                            })
                            .set(lag);
                    }
                }
            }
            for a in &d.status.aspects {
                self.commitment
                    .get_or_create(&CommitmentLabels {
                        dataset: name.clone(),
                        commitment: a.name.to_string(),
                    })
                    .set(level(a.verdict));
            }
        }
        self.commitment
            .get_or_create(&CommitmentLabels {
                dataset: String::new(),
                commitment: "ledger".into(),
            })
            .set(level(view.status.ledger.verdict));
        // The platform's commitments (drill, RTO, incident updates, post-mortems, roles, review).
        for a in &view.status.platform.aspects {
            self.commitment
                .get_or_create(&CommitmentLabels {
                    dataset: String::new(),
                    commitment: a.name.to_string(),
                })
                .set(level(a.verdict));
        }
    }

    pub fn job_finished(&self, dataset: &str, seconds: f64, ok: bool) {
        let label = DatasetLabel {
            dataset: dataset.to_string(),
        };
        self.job_duration.get_or_create(&label).observe(seconds);
        if !ok {
            self.job_failures.get_or_create(&label).inc();
        }
    }

    pub fn set_running(&self, n: usize) {
        self.jobs_running.set(n as i64);
    }

    pub fn reload_failed(&self) {
        self.reload_failures.inc();
    }

    /// The OpenMetrics text.
    pub fn render(&self) -> String {
        let _one = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// Families that are rebuilt from each view: gone datasets must not linger.
trait Clear {
    fn clear_all(&self);
}

impl<L, M, C> Clear for Family<L, M, C>
where
    L: Clone + std::hash::Hash + Eq,
    C: prometheus_client::metrics::family::MetricConstructor<M>,
{
    fn clear_all(&self) {
        self.clear();
    }
}
