//! Append-only backup hosts: a repository marked `append_only = true` in the policy file must be
//! reached from this host with a credential that cannot delete. `status` probes each such
//! repository on this host's own canary (`bulwark_repo::canary`) and flags it when the
//! credential can delete; a probe that fails is reported as such, never as a pass.

use bulwark_policy::compliance::Verdict;
use serde::Serialize;

use crate::workspace::Workspace;

/// One `append_only` repository, judged from this host.
#[derive(Debug, Serialize, Clone, PartialEq, Eq)]
pub struct AppendOnlyCheck {
    pub repository: String,
    /// Met: the credential cannot delete. Breached: it can. AtRisk: the probe failed.
    pub verdict: Verdict,
    pub reason: String,
    pub can_delete: Option<bool>,
    pub can_overwrite: Option<bool>,
}

/// Every repository of the policy file marked `append_only`, probed with this host's credential.
pub fn check(ws: &Workspace) -> Vec<AppendOnlyCheck> {
    ws.config()
        .repositories
        .values()
        .filter(|r| r.append_only)
        .map(|r| {
            let probe = ws.location_of(&r.name).map_err(|e| e.to_string()).and_then(|l| {
                bulwark_repo::StoreBackend::bucket(&l)
                    .and_then(|b| b.probe_credentials_of_host())
                    .map_err(|e| e.to_string())
            });
            match probe {
                Ok(p) => AppendOnlyCheck {
                    repository: r.name.clone(),
                    verdict: if p.can_delete {
                        Verdict::Breached
                    } else {
                        Verdict::Met
                    },
                    reason: if p.can_delete {
                        format!(
                            "append_only, but this host's credential can delete objects in {}: whoever takes this host can destroy its backups",
                            r.name
                        )
                    } else {
                        "this host's credential cannot delete".into()
                    },
                    can_delete: Some(p.can_delete),
                    can_overwrite: Some(p.can_overwrite),
                },
                Err(e) => AppendOnlyCheck {
                    repository: r.name.clone(),
                    verdict: Verdict::AtRisk,
                    reason: format!("could not probe the credential: {e}"),
                    can_delete: None,
                    can_overwrite: None,
                },
            }
        })
        .collect()
}
