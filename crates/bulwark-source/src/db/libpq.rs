//! libpq's conventions for where connection settings come from, for the connections Bulwark makes
//! itself (the Rust driver reads none of them; `pg_dump` and `psql` read them on their own):
//!
//! - the connection service file: `service=NAME` in the connection string, or `PGSERVICE`, names
//!   a section of `PGSERVICEFILE` (default `~/.pg_service.conf`) or, failing that, of
//!   `PGSYSCONFDIR/pg_service.conf` (default `/etc/postgresql-common/pg_service.conf`); settings
//!   given in the connection string itself win;
//! - the password file: `PGPASSFILE` (default `~/.pgpass`), lines of
//!   `hostname:port:database:username:password` where `*` matches anything and `\` escapes `:`
//!   and `\`; the first matching line wins; a Unix-socket connection matches `localhost`; like
//!   libpq, a file that group or others may read is ignored, with a warning.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::{DbError, DbResult};

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

/// Removes `service=NAME` from a connection string (either form) and returns what is left and
/// the name; `PGSERVICE` names the service when the string does not.
pub fn take_service(dsn: &str) -> (String, Option<String>) {
    let env = || std::env::var("PGSERVICE").ok().filter(|s| !s.is_empty());
    if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
        let Some((base, query)) = dsn.split_once('?') else {
            return (dsn.to_string(), env());
        };
        let mut service = None;
        let kept: Vec<&str> = query
            .split('&')
            .filter(|kv| match kv.strip_prefix("service=") {
                Some(name) => {
                    service = Some(name.to_string());
                    false
                }
                None => true,
            })
            .collect();
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return (rest, service.or_else(env));
    }
    let mut service = None;
    let kept: Vec<String> = tokens(dsn)
        .into_iter()
        .filter(|(k, v)| {
            if k == "service" {
                service = Some(v.clone());
                false
            } else {
                true
            }
        })
        .map(|(k, v)| format!("{k}={}", quote(&v)))
        .collect();
    (kept.join(" "), service.or_else(env))
}

/// `key=value` pairs of a libpq connection string, with quoting and escapes resolved.
fn tokens(dsn: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = dsn.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        if key.is_empty() {
            break;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next_if_eq(&'=').is_none() {
            break;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
    out
}

/// A value as libpq's key=value syntax writes it.
pub fn quote(v: &str) -> String {
    if !v.is_empty() && !v.contains(|c: char| c.is_whitespace() || c == '\'' || c == '\\') {
        return v.to_string();
    }
    let mut s = String::from("'");
    for c in v.chars() {
        if c == '\'' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('\'');
    s
}

/// The settings of service `name`, from the first service file that defines it.
pub fn service(name: &str) -> DbResult<BTreeMap<String, String>> {
    let mut files = Vec::new();
    match std::env::var_os("PGSERVICEFILE") {
        Some(f) => files.push(PathBuf::from(f)),
        None => files.extend(home().map(|h| h.join(".pg_service.conf"))),
    }
    let sysconf = std::env::var_os("PGSYSCONFDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/postgresql-common"));
    files.push(sysconf.join("pg_service.conf"));
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        if let Some(settings) = service_section(&text, name) {
            return Ok(settings);
        }
    }
    Err(DbError(format!(
        "the PostgreSQL service '{name}' is not defined in {}",
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(" or ")
    )))
}

fn service_section(text: &str, name: &str) -> Option<BTreeMap<String, String>> {
    let mut current: Option<&str> = None;
    let mut found: Option<BTreeMap<String, String>> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if found.is_some() {
                break;
            }
            current = Some(section.trim());
            if current == Some(name) {
                found = Some(BTreeMap::new());
            }
            continue;
        }
        if current == Some(name)
            && let (Some(map), Some((k, v))) = (found.as_mut(), line.split_once('='))
        {
            map.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    found
}

/// The password `~/.pgpass` (or `PGPASSFILE`) holds for this connection, if any.
pub fn password(host: &str, port: u16, database: &str, user: &str) -> Option<String> {
    let file = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".pgpass")))?;
    let meta = std::fs::metadata(&file).ok()?;
    if !meta.is_file() {
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            "password file {} has group or world access; it is ignored (chmod 0600 it)",
            file.display()
        );
        return None;
    }
    let text = std::fs::read_to_string(&file).ok()?;
    password_in(&text, host, port, database, user)
}

fn password_in(text: &str, host: &str, port: u16, database: &str, user: &str) -> Option<String> {
    let port = port.to_string();
    let want = [host, port.as_str(), database, user];
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_fields(line);
        if fields.len() < 5 {
            continue;
        }
        let matches = fields[..4]
            .iter()
            .zip(want)
            .all(|(f, w)| f == "*" || f == w);
        if matches {
            return Some(fields[4..].join(":"));
        }
    }
    None
}

/// A password-file line split at unescaped colons, escapes resolved.
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    fields.last_mut().expect("one field").push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_lines_match_with_wildcards_and_escapes() {
        let text = "# comment\n\
                    db1:5432:orders:app:first\n\
                    *:*:*:app:p\\:w\\\\d:with:colons\n\
                    localhost:5433:*:*:sock\n";
        assert_eq!(
            password_in(text, "db1", 5432, "orders", "app").unwrap(),
            "first"
        );
        assert_eq!(
            password_in(text, "db2", 5432, "x", "app").unwrap(),
            "p:w\\d:with:colons"
        );
        assert_eq!(
            password_in(text, "localhost", 5433, "y", "bob").unwrap(),
            "sock"
        );
        assert_eq!(password_in(text, "db2", 5432, "x", "bob"), None);
    }

    #[test]
    fn service_sections_and_service_parameters() {
        let conf =
            "[other]\nhost=x\n\n[orders]\nhost = db1\nport=5433\ndbname=orders\n[after]\nhost=y\n";
        let s = service_section(conf, "orders").unwrap();
        assert_eq!(s["host"], "db1");
        assert_eq!(s["port"], "5433");
        assert!(!s.contains_key("after"));
        assert_eq!(service_section(conf, "missing"), None);

        let (rest, name) = take_service("service=orders user='a b' dbname=x");
        assert_eq!(name.as_deref(), Some("orders"));
        assert_eq!(rest, "user='a b' dbname=x");
        let (rest, name) = take_service("postgres://u@h/db?service=orders&sslmode=disable");
        assert_eq!(name.as_deref(), Some("orders"));
        assert_eq!(rest, "postgres://u@h/db?sslmode=disable");
        assert_eq!(tokens("password='it''s'")[0].1, "it");
        assert_eq!(tokens(r"password='it\'s'")[0].1, "it's");
    }
}
