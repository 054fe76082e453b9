//! Holds: a legal or contractual hold keeps a snapshot whatever the retention rules say, until
//! the hold is removed or expires. Each hold is its own encrypted object in `holds/`.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backend::FileKind;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::repository::Repository;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct HoldRecord {
    pub snapshot: Id,
    /// `None`: held until removed.
    pub until: Option<DateTime<Utc>>,
    pub reason: String,
    pub created: DateTime<Utc>,
    pub by: String,
}

impl HoldRecord {
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.until.is_none_or(|u| u > now)
    }
}

impl Repository {
    pub fn add_hold(&self, hold: &HoldRecord) -> Result<String> {
        let stored = self
            .key()
            .seal_object(&serde_json::to_vec(hold).expect("serialises"));
        let name = Id::of_stored(&stored).to_hex();
        self.backend()
            .create(FileKind::Hold, &name, Bytes::from(stored))?;
        Ok(name)
    }

    pub fn holds(&self) -> Result<Vec<(String, HoldRecord)>> {
        let mut out = Vec::new();
        for (name, _) in self.backend().list(FileKind::Hold)? {
            let what = format!("holds/{name}");
            let stored = self.backend().read(FileKind::Hold, &name)?;
            let plain = self.key().open_object(&what, &stored)?;
            let hold: HoldRecord =
                serde_json::from_slice(&plain).map_err(|e| Error::corrupt(what, e))?;
            out.push((name, hold));
        }
        out.sort_by_key(|(_, h)| h.created);
        Ok(out)
    }

    /// Remove every hold on `snapshot`; returns how many there were.
    pub fn remove_holds(&self, snapshot: &Id) -> Result<usize> {
        let mut n = 0;
        for (name, h) in self.holds()? {
            if h.snapshot == *snapshot {
                self.backend().remove(FileKind::Hold, &name)?;
                n += 1;
            }
        }
        Ok(n)
    }
}
