//! Packs condemned by prune: no snapshot needed them when they were marked, new backups no longer
//! deduplicate against them, and they are deleted once every process that could still rely on
//! them has gone (see the prune protocol in `bulwark-ops`).

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backend::FileKind;
use crate::error::{Error, Result};
use crate::id::{Id, IdSet};
use crate::repository::Repository;

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Condemnation {
    pub time: DateTime<Utc>,
    pub packs: Vec<Id>,
    /// Lock holders alive when the mark was made: they may have loaded the index before it.
    pub holders: Vec<Id>,
}

impl Repository {
    pub fn save_condemnation(&self, c: &Condemnation) -> Result<String> {
        let stored = self
            .key()
            .seal_object(&serde_json::to_vec(c).expect("serialises"));
        let name = Id::of_stored(&stored).to_hex();
        self.backend()
            .create(FileKind::Condemned, &name, Bytes::from(stored))?;
        Ok(name)
    }

    pub fn condemnations(&self) -> Result<Vec<(String, Condemnation)>> {
        let mut out = Vec::new();
        for (name, _) in self.backend().list(FileKind::Condemned)? {
            let stored = match self.backend().read(FileKind::Condemned, &name) {
                Ok(s) => s,
                Err(Error::NotFound { .. }) => continue, // swept meanwhile
                Err(e) => return Err(e),
            };
            let what = format!("condemned/{name}");
            let plain = self.key().open_object(&what, &stored)?;
            out.push((
                name,
                serde_json::from_slice(&plain).map_err(|e| Error::corrupt(what, e))?,
            ));
        }
        Ok(out)
    }

    /// Every pack currently condemned.
    pub fn condemned_packs(&self) -> Result<IdSet> {
        Ok(self
            .condemnations()?
            .into_iter()
            .flat_map(|(_, c)| c.packs)
            .collect())
    }
}
