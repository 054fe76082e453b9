//! The daemon's monthly pack (`[evidence] monthly_to = DIR`): once a calendar month (UTC) is
//! over, its pack is filed as `DIR/bulwark-evidence-YYYY-MM.tar`, signed with `[evidence]
//! signing_key`. Driven by the caller's clock; idempotent (a month already filed is left alone,
//! so any node of a cluster may call it, and a node that was down files the month when it
//! returns). The tar is written under a temporary name and renamed, so a reader never sees half.

use std::path::PathBuf;

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};

use super::{EvidenceError, Request, build, pack, sign};
use crate::workspace::Workspace;

/// The month before the one `now` is in: `[start, end)`.
pub fn previous_month(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let this = NaiveDate::from_ymd_opt(now.year(), now.month(), 1)
        .expect("the first of a month exists")
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    let before = this - Months::new(1);
    (before, this)
}

/// Where the pack of the month starting at `start` is filed.
pub fn file_name(start: DateTime<Utc>) -> String {
    format!("bulwark-evidence-{}.tar", start.format("%Y-%m"))
}

/// Files last month's pack if `[evidence] monthly_to` is set and it is not filed yet. Returns
/// the file written, if any.
pub fn file_last_month(
    ws: &Workspace,
    now: DateTime<Utc>,
) -> Result<Option<PathBuf>, EvidenceError> {
    let e = &ws.policy().config.evidence;
    let Some(dir) = e.monthly_to.as_deref() else {
        return Ok(None);
    };
    let dir = ws.resolve(dir);
    let (from, to) = previous_month(now);
    let out = dir.join(file_name(from));
    if out.exists() {
        return Ok(None);
    }
    let key_path = e
        .signing_key
        .as_deref()
        .map(|k| ws.resolve(k))
        .ok_or_else(|| EvidenceError::Key {
            path: ws.path().to_path_buf(),
            detail: "[evidence] monthly_to needs [evidence] signing_key".into(),
        })?;
    let key = sign::load_signing_key(&key_path)?;
    let made = build(
        ws,
        &Request {
            from,
            to,
            now,
            key: &key,
            pdf: None,
        },
    )?;
    std::fs::create_dir_all(&dir).map_err(|source| EvidenceError::Io {
        path: dir.clone(),
        source,
    })?;
    // Still a `.tar` name: `pack::write` picks the format by it.
    let partial = dir.join(format!(
        ".partial-{}-{}",
        std::process::id(),
        file_name(from)
    ));
    let _ = std::fs::remove_file(&partial);
    pack::write(&made.files, &made.name, &partial)?;
    std::fs::rename(&partial, &out).map_err(|source| EvidenceError::Io {
        path: out.clone(),
        source,
    })?;
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_previous_month_is_whole_and_crosses_years() {
        let t = |y, m, d, h| Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap();
        assert_eq!(
            previous_month(t(2026, 3, 31, 23)),
            (t(2026, 2, 1, 0), t(2026, 3, 1, 0))
        );
        assert_eq!(
            previous_month(t(2027, 1, 1, 0)),
            (t(2026, 12, 1, 0), t(2027, 1, 1, 0))
        );
        assert_eq!(file_name(t(2026, 12, 1, 0)), "bulwark-evidence-2026-12.tar");
    }
}
