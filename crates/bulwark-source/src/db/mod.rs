//! Databases as backup sources: PostgreSQL (consistent logical dumps, or physical base backups
//! with archived WAL: see [`physical`]) and MariaDB/MySQL (consistent logical dumps) and
//! SQLite (a consistent online copy), each recorded with a fingerprint — the exact row count and, where affordable, a
//! content checksum of every table, taken in the same snapshot as the data — so a restore can
//! prove it brought back exactly what was backed up.

mod copy_tap;
pub mod datadir;
pub mod dump;
pub mod libpq;
pub mod mariadb;
pub mod physical;
pub mod postgres;
pub mod rows;
pub mod scratch;
pub mod sqlite;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The key of [`DbMeta`] in a snapshot's `meta`.
pub const META_KEY: &str = "database";

/// What went wrong with a database, its tools or a scratch target; the text says what and why,
/// and where useful what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DbError(pub String);

impl DbError {
    pub fn new(msg: impl Into<String>) -> DbError {
        DbError(msg.into())
    }

    /// Prefix the message with what was being done.
    pub fn context(self, what: impl std::fmt::Display) -> DbError {
        DbError(format!("{what}: {}", self.0))
    }
}

pub type DbResult<T> = Result<T, DbError>;

impl From<::postgres::Error> for DbError {
    fn from(e: ::postgres::Error) -> DbError {
        DbError(postgres::describe_error(&e))
    }
}

impl From<::mysql::Error> for DbError {
    fn from(e: ::mysql::Error) -> DbError {
        DbError(mariadb::describe_error(&e))
    }
}

impl From<::rusqlite::Error> for DbError {
    fn from(e: ::rusqlite::Error) -> DbError {
        DbError(format!("sqlite: {e}"))
    }
}

/// One table's fingerprint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TableFingerprint {
    /// Exact row count (`count(*)`, never an estimate).
    pub rows: u64,
    /// An order-independent digest of every row's text (absent for tables over the size limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

/// Fingerprints by table name (`schema.table` with identifiers quoted as needed).
pub type Fingerprint = BTreeMap<String, TableFingerprint>;

/// Where `restored` differs from `recorded`, one line per table (empty when they agree). A checksum
/// is compared only where both sides have one.
pub fn compare(recorded: &Fingerprint, restored: &Fingerprint) -> Vec<String> {
    let mut out = Vec::new();
    let names: BTreeSet<&String> = recorded.keys().chain(restored.keys()).collect();
    for name in names {
        match (recorded.get(name), restored.get(name)) {
            (Some(_), None) => out.push(format!("{name}: table missing from the restore")),
            (None, Some(r)) => out.push(format!(
                "{name}: table not in the backup's fingerprint ({} rows restored)",
                r.rows
            )),
            (Some(want), Some(got)) => {
                if want.rows != got.rows {
                    out.push(format!(
                        "{name}: {} rows restored, {} recorded at backup",
                        got.rows, want.rows
                    ));
                } else if let (Some(a), Some(b)) = (&want.checksum, &got.checksum)
                    && a != b
                {
                    out.push(format!(
                        "{name}: content checksum {b} differs from {a} recorded at backup (same {} rows)",
                        got.rows
                    ));
                }
            }
            (None, None) => {}
        }
    }
    out
}

/// The facts a database backup records in its snapshot's `meta` under [`META_KEY`].
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[allow(clippy::large_enum_variant)] // one per snapshot, never in a hot path
pub enum DbMeta {
    Postgres(postgres::PgFacts),
    Sqlite(sqlite::SqliteFacts),
    Mariadb(mariadb::MariadbFacts),
}

impl DbMeta {
    pub fn kind(&self) -> &'static str {
        match self {
            DbMeta::Postgres(_) => "postgres",
            DbMeta::Sqlite(_) => "sqlite",
            DbMeta::Mariadb(_) => "mariadb",
        }
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("database facts serialise")
    }

    /// The facts in a snapshot's meta: `None` when the snapshot is not a database backup.
    pub fn from_meta(meta: &BTreeMap<String, serde_json::Value>) -> Option<DbResult<DbMeta>> {
        let v = meta.get(META_KEY)?;
        Some(
            serde_json::from_value(v.clone())
                .map_err(|e| DbError(format!("the snapshot's database facts are unreadable: {e}"))),
        )
    }

    pub fn tables(&self) -> &Fingerprint {
        match self {
            DbMeta::Postgres(f) => &f.tables,
            DbMeta::Sqlite(f) => &f.tables,
            DbMeta::Mariadb(f) => &f.tables,
        }
    }
}

/// Whether an assertion's result value counts as true.
pub fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "t" | "true" | "1" | "yes" | "on" | "y"
    )
}

/// The last `n` non-empty lines of `text`, joined with " | " (for one-line error messages).
pub fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(rows: u64, sum: Option<&str>) -> TableFingerprint {
        TableFingerprint {
            rows,
            checksum: sum.map(str::to_string),
        }
    }

    #[test]
    fn compare_names_every_difference() {
        let mut a = Fingerprint::new();
        a.insert("public.a".into(), fp(10, Some("1")));
        a.insert("public.b".into(), fp(5, None));
        a.insert("public.c".into(), fp(1, Some("9")));
        let mut b = a.clone();
        assert!(compare(&a, &b).is_empty());
        b.insert("public.a".into(), fp(9, Some("1")));
        b.insert("public.c".into(), fp(1, Some("8")));
        b.remove("public.b");
        b.insert("public.d".into(), fp(0, None));
        let d = compare(&a, &b);
        assert_eq!(d.len(), 4, "{d:?}");
        assert!(d[0].contains("9 rows restored, 10 recorded"), "{d:?}");
        assert!(d[1].contains("missing"), "{d:?}");
        assert!(d[2].contains("checksum"), "{d:?}");
        assert!(d[3].contains("not in the backup"), "{d:?}");
    }
}
