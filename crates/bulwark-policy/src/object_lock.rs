//! The Object Lock commitment (policy §3, ransomware): on a repository made with
//! `init --object-lock`, every object a retained snapshot needs stays locked until that
//! snapshot's earliest forget date. The proof is `check --locks`, which `run` repeats (extending
//! what is short) after each prune; this judges the newest proof.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::compliance::Verdict;
use crate::duration::human;

/// The newest lock proof of a repository, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockProof {
    pub at: DateTime<Utc>,
    pub ok: bool,
    /// Snapshots still short after extending.
    pub short: Vec<String>,
    pub least_slack_s: Option<i64>,
}

/// Met while the newest proof passed and is at most two prune intervals old (a prune, and so
/// a proof, may be a day late); breached when it found snapshots short; at risk when there is
/// none yet or it is stale.
pub fn judge(
    last: Option<&LockProof>,
    prune_every: Duration,
    now: DateTime<Utc>,
) -> (Verdict, String) {
    let Some(p) = last else {
        return (
            Verdict::AtRisk,
            "lock coverage never proven: run `bulwark check --locks --extend-locks`".into(),
        );
    };
    if !p.ok {
        return (
            Verdict::Breached,
            if p.short.is_empty() {
                "the last lock check failed".to_string()
            } else {
                format!("snapshots not locked long enough: {}", p.short.join(", "))
            },
        );
    }
    let age = (now - p.at).to_std().unwrap_or_default();
    if age > prune_every * 2 {
        return (
            Verdict::AtRisk,
            format!(
                "the last proof of lock coverage is {} old (expected every {})",
                human(age),
                human(prune_every)
            ),
        );
    }
    let slack = p
        .least_slack_s
        .map(|s| {
            format!(
                ", least margin {}",
                human(Duration::from_secs(s.max(0) as u64))
            )
        })
        .unwrap_or_default();
    (
        Verdict::Met,
        format!("every needed object locked long enough{slack}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_proof_decides() {
        let now = Utc::now();
        let day = Duration::from_secs(86_400);
        let proof = |hours_ago: i64, ok: bool| LockProof {
            at: now - chrono::Duration::hours(hours_ago),
            ok,
            short: if ok { vec![] } else { vec!["1a2b3c4d".into()] },
            least_slack_s: Some(7 * 86_400),
        };
        assert_eq!(judge(None, day, now).0, Verdict::AtRisk);
        assert_eq!(judge(Some(&proof(3, true)), day, now).0, Verdict::Met);
        let (v, why) = judge(Some(&proof(3, false)), day, now);
        assert_eq!(v, Verdict::Breached);
        assert!(why.contains("1a2b3c4d"), "{why}");
        let (v, why) = judge(Some(&proof(50, true)), day, now);
        assert_eq!(v, Verdict::AtRisk);
        assert!(why.contains("old"), "{why}");
    }
}
