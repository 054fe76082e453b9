//! `[evidence]` (how evidence packs are signed and where the daemon files one each month) and
//! `[exports.NAME]` (export profiles: what a customer's own export of a dataset holds).
//!
//! An export profile names a database dataset and, per output file, one SQL query run on a
//! scratch restore of a snapshot (never on production): `files = { "orders.csv" = "SELECT ..." }`.
//! File names are plain names ending in `.csv`, so an export can never write outside its archive.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{ConfigError, Dataset, DatasetKind, Location, locate};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEvidence {
    signing_key: Option<String>,
    monthly_to: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExport {
    dataset: Spanned<String>,
    files: Spanned<BTreeMap<String, String>>,
}

/// `[evidence]`.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// The Ed25519 private key (PKCS#8 PEM) packs are signed with, relative to the policy file.
    pub signing_key: Option<String>,
    /// Where `bulwark serve` files one pack per month: a directory or an `s3://` location.
    pub monthly_to: Option<String>,
}

/// `[exports.NAME]`.
#[derive(Debug, Clone)]
pub struct ExportProfile {
    pub name: String,
    pub dataset: String,
    /// Output file name -> the query whose rows it holds (with a header line).
    pub files: BTreeMap<String, String>,
    pub location: Location,
}

pub(crate) fn evidence(raw: Option<RawEvidence>) -> Evidence {
    raw.map(|r| Evidence {
        signing_key: r.signing_key,
        monthly_to: r.monthly_to,
    })
    .unwrap_or_default()
}

/// Whether `name` is a file name an export may write: a plain `.csv` name, no path.
pub fn plain_csv_name(name: &str) -> bool {
    name.len() > 4
        && name.ends_with(".csv")
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub(crate) fn exports(
    raw: &BTreeMap<String, Spanned<RawExport>>,
    datasets: &BTreeMap<String, Dataset>,
    text: &str,
    fail: &dyn Fn(usize, String) -> ConfigError,
) -> Result<BTreeMap<String, ExportProfile>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, e) in raw {
        let at = e.span().start;
        let e = e.get_ref();
        let dataset = e.dataset.get_ref();
        let Some(d) = datasets.get(dataset) else {
            return Err(fail(
                e.dataset.span().start,
                format!("exports.{name}.dataset: no dataset named '{dataset}'"),
            ));
        };
        if !matches!(
            d.kind,
            DatasetKind::Postgres | DatasetKind::Sqlite | DatasetKind::Mariadb
        ) {
            return Err(fail(
                e.dataset.span().start,
                format!(
                    "exports.{name}.dataset: '{dataset}' is a {:?} dataset; export profiles query databases",
                    d.kind
                )
                .to_lowercase(),
            ));
        }
        if e.files.get_ref().is_empty() {
            return Err(fail(
                e.files.span().start,
                format!("exports.{name}.files: name at least one output file and its query"),
            ));
        }
        for (file, query) in e.files.get_ref() {
            if !plain_csv_name(file) {
                return Err(fail(
                    e.files.span().start,
                    format!(
                        "exports.{name}.files: '{file}' is not a plain file name ending in .csv (letters, digits, - _ .)"
                    ),
                ));
            }
            if query.trim().is_empty() {
                return Err(fail(
                    e.files.span().start,
                    format!("exports.{name}.files.{file}: the query is empty"),
                ));
            }
        }
        out.insert(
            name.clone(),
            ExportProfile {
                name: name.clone(),
                dataset: dataset.clone(),
                files: e.files.get_ref().clone(),
                location: locate(text, at),
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = r#"
[repositories.primary]
url = "/r"
[datasets.app-db]
kind = "sqlite"
source = "app.db"
schedule = "daily"
[datasets.docs]
kind = "files"
paths = ["/srv"]
schedule = "daily"
"#;

    #[test]
    fn evidence_and_export_profiles_parse() {
        let text = format!(
            "{BASE}\n[evidence]\nsigning_key = \"evidence.key\"\nmonthly_to = \"/srv/evidence\"\n\
             [exports.acme]\ndataset = \"app-db\"\nfiles = {{ \"orders.csv\" = \"SELECT * FROM orders WHERE tenant = 'acme'\" }}\n"
        );
        let c = Config::parse("t.toml", &text).unwrap();
        assert_eq!(c.evidence.signing_key.as_deref(), Some("evidence.key"));
        assert_eq!(c.evidence.monthly_to.as_deref(), Some("/srv/evidence"));
        let p = &c.exports["acme"];
        assert_eq!(p.dataset, "app-db");
        assert!(p.files["orders.csv"].contains("tenant = 'acme'"));
        let none = Config::parse("t.toml", BASE).unwrap();
        assert!(none.evidence.signing_key.is_none() && none.exports.is_empty());
    }

    #[test]
    fn bad_profiles_are_refused_where_they_are() {
        let cases = [
            (
                "dataset = \"nope\"\nfiles = { \"a.csv\" = \"SELECT 1\" }",
                "no dataset named 'nope'",
            ),
            (
                "dataset = \"docs\"\nfiles = { \"a.csv\" = \"SELECT 1\" }",
                "profiles query databases",
            ),
            (
                "dataset = \"app-db\"\nfiles = { \"../a.csv\" = \"SELECT 1\" }",
                "not a plain file name",
            ),
            (
                "dataset = \"app-db\"\nfiles = { \"a.txt\" = \"SELECT 1\" }",
                "ending in .csv",
            ),
            (
                "dataset = \"app-db\"\nfiles = { \"a.csv\" = \" \" }",
                "the query is empty",
            ),
            (
                "dataset = \"app-db\"\nfiles = {}",
                "at least one output file",
            ),
        ];
        for (body, want) in cases {
            let text = format!("{BASE}\n[exports.x]\n{body}\n");
            let e = Config::parse("t.toml", &text).unwrap_err();
            assert!(e.message.contains(want), "{body}: {e}");
            assert!(e.line > 10, "{body}: located at {}:{}", e.line, e.column);
        }
        let e = Config::parse("t.toml", &format!("{BASE}\n[evidence]\nkey = \"x\"\n")).unwrap_err();
        assert!(e.message.contains("unknown field"), "{e}");
    }
}
