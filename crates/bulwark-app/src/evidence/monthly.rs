//! The daemon's monthly pack (`[evidence] monthly_to = DIR` or `s3://bucket/prefix`): once a
//! calendar month (UTC) is over, its pack is filed as `bulwark-evidence-YYYY-MM.tar` there,
//! signed with `[evidence] signing_key`. Driven by the caller's clock; idempotent (a month already
//! filed is left alone, so any node of a cluster may call it, and a node that was down files the
//! month when it returns). A reader never sees half a pack: in a folder the tar is written under
//! a temporary name and renamed; in a bucket it is built in a private temporary folder and then
//! uploaded as one object, which appears only once complete.

use std::path::PathBuf;

use bulwark_repo::StoreBackend;

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

/// Where monthly packs are filed.
enum Filing {
    Dir(PathBuf),
    Bucket {
        url: String,
        store: Box<StoreBackend>,
    },
}

fn bucket_error(url: &str, e: bulwark_repo::Error) -> EvidenceError {
    EvidenceError::Io {
        path: PathBuf::from(url),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Files last month's pack if `[evidence] monthly_to` is set and it is not filed yet. Returns
/// where it was filed (a path, or the object's URL), if it was.
pub fn file_last_month(
    ws: &Workspace,
    now: DateTime<Utc>,
) -> Result<Option<String>, EvidenceError> {
    let e = &ws.policy().config.evidence;
    let Some(to) = e.monthly_to.as_deref() else {
        return Ok(None);
    };
    let (from, until) = previous_month(now);
    let name = file_name(from);
    let filing = if to.starts_with("s3://") {
        let store = StoreBackend::bucket(to).map_err(|e| bucket_error(to, e))?;
        let filed = store
            .list_objects()
            .map_err(|e| bucket_error(to, e))?
            .iter()
            .any(|o| o.key == name);
        if filed {
            return Ok(None);
        }
        Filing::Bucket {
            url: to.to_string(),
            store: Box::new(store),
        }
    } else {
        let dir = ws.resolve(to);
        if dir.join(&name).exists() {
            return Ok(None);
        }
        Filing::Dir(dir)
    };
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
            to: until,
            now,
            key: &key,
            pdf: None,
        },
    )?;
    let io = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| EvidenceError::Io { path, source }
    };
    match filing {
        Filing::Dir(dir) => {
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            // Still a `.tar` name: `pack::write` picks the format by it.
            let partial = dir.join(format!(".partial-{}-{name}", std::process::id()));
            let _ = std::fs::remove_file(&partial);
            pack::write(&made.files, &made.name, &partial)?;
            let out = dir.join(&name);
            std::fs::rename(&partial, &out).map_err(io(&out))?;
            Ok(Some(out.display().to_string()))
        }
        Filing::Bucket { url, store } => {
            let scratch = tempfile::tempdir().map_err(io(&std::env::temp_dir()))?;
            let tar = scratch.path().join(&name);
            pack::write(&made.files, &made.name, &tar)?;
            let mut file = std::fs::File::open(&tar).map_err(io(&tar))?;
            store
                .put_object(
                    &name,
                    &mut file,
                    &[("content-type".to_string(), "application/x-tar".to_string())],
                )
                .map_err(|e| bucket_error(&url, e))?;
            Ok(Some(format!("{}/{name}", url.trim_end_matches('/'))))
        }
    }
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
