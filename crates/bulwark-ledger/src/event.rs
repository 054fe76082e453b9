//! The event model, its canonical serialization and its hash.
//!
//! An event's id is the BLAKE3 hash (lowercase hex) of its *hashed form*: the UTF-8 text of a JSON
//! object holding every field of the [`Event`] except `id`, plus `"v": 1` (the format version),
//! written canonically: object keys sorted bytewise at every depth, no whitespace, strings escaped
//! as serde_json escapes them, numbers as serde_json prints them, timestamps as RFC 3339 UTC with
//! exactly nine fractional digits. `prev_hash` is part of that object, which is what chains the
//! events. Anyone can recompute an id with `b3sum` over the stored text.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::{Error, Result};

/// The `prev_hash` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The version of the hashed form, stored in it as `"v"`.
pub const FORMAT_VERSION: u64 = 1;

/// What happened. Serialized as a snake_case string; kinds this version does not know are kept
/// verbatim in [`EventKind::Other`], so a newer writer's events still read and verify.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    Backup,
    Copy,
    Check,
    Repair,
    Forget,
    Prune,
    RestoreTest,
    ConfigChange,
    RemediationOpened,
    RemediationClosed,
    Drill,
    Incident,
    Review,
    /// One invocation of `run` (or a scheduler tick): what it found due and did.
    Run,
    /// The ledger's own copy stored in a repository.
    LedgerCopy,
    /// A state-changing request to the daemon's API, naming its caller.
    ApiCall,
    /// A daemon node started, stopped, or refused a policy file.
    Daemon,
    /// A notice delivered (or not) to one notification channel.
    Notification,
    /// Backups of a primary now go to one of its replicas (the primary's region is down).
    Failover,
    /// Backups of a primary go to it again, after what was made meanwhile was copied back.
    Failback,
    /// The policy file and ledger brought back from a repository's copy (recovery from nothing).
    Recovery,
    /// A bucket's listing compared with its replica's.
    ReplicationAudit,
    /// The roles of the policy file (holders, alternates) as a run found them, when they changed.
    RoleChange,
    Other(String),
}

impl EventKind {
    const NAMED: [(EventKind, &'static str); 23] = [
        (EventKind::Backup, "backup"),
        (EventKind::Copy, "copy"),
        (EventKind::Check, "check"),
        (EventKind::Repair, "repair"),
        (EventKind::Forget, "forget"),
        (EventKind::Prune, "prune"),
        (EventKind::RestoreTest, "restore_test"),
        (EventKind::ConfigChange, "config_change"),
        (EventKind::RemediationOpened, "remediation_opened"),
        (EventKind::RemediationClosed, "remediation_closed"),
        (EventKind::Drill, "drill"),
        (EventKind::Incident, "incident"),
        (EventKind::Review, "review"),
        (EventKind::Run, "run"),
        (EventKind::LedgerCopy, "ledger_copy"),
        (EventKind::ApiCall, "api_call"),
        (EventKind::Daemon, "daemon"),
        (EventKind::Notification, "notification"),
        (EventKind::Failover, "failover"),
        (EventKind::Failback, "failback"),
        (EventKind::Recovery, "recovery"),
        (EventKind::ReplicationAudit, "replication_audit"),
        (EventKind::RoleChange, "role_change"),
    ];

    pub fn as_str(&self) -> &str {
        match self {
            EventKind::Other(s) => s,
            named => Self::NAMED
                .iter()
                .find(|(k, _)| k == named)
                .map(|(_, s)| *s)
                .unwrap_or(""),
        }
    }

    /// Never fails: an unknown name becomes [`EventKind::Other`].
    pub fn parse(s: &str) -> EventKind {
        Self::NAMED
            .iter()
            .find(|(_, name)| *name == s)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| EventKind::Other(s.to_string()))
    }

    pub(crate) fn is_remediation(&self) -> bool {
        matches!(
            self,
            EventKind::RemediationOpened | EventKind::RemediationClosed
        ) || matches!(self, EventKind::Other(s) if s == "remediation_opened" || s == "remediation_closed")
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(EventKind::parse(s))
    }
}

impl From<&str> for EventKind {
    fn from(s: &str) -> Self {
        EventKind::parse(s)
    }
}

impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(EventKind::parse(&s))
    }
}

/// An event as the caller describes it, before the ledger places it in the chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub kind: EventKind,
    pub dataset: Option<String>,
    pub repository: Option<String>,
    /// Hash of the configuration in force (see [`crate::config_hash`]).
    pub config_hash: Option<String>,
    #[serde(with = "ts")]
    pub started: DateTime<Utc>,
    #[serde(with = "ts")]
    pub finished: DateTime<Utc>,
    pub ok: bool,
    pub summary: String,
    /// Free-form results (counts, sizes, checks run and their outcomes...). Any JSON.
    pub details: Value,
}

impl NewEvent {
    /// An event of `kind` that started and finished now, ok, with empty details.
    pub fn new(kind: EventKind, summary: impl Into<String>) -> NewEvent {
        let now = Utc::now();
        NewEvent {
            kind,
            dataset: None,
            repository: None,
            config_hash: None,
            started: now,
            finished: now,
            ok: true,
            summary: summary.into(),
            details: Value::Object(Default::default()),
        }
    }

    pub fn dataset(mut self, dataset: impl Into<String>) -> Self {
        self.dataset = Some(dataset.into());
        self
    }

    pub fn repository(mut self, repository: impl Into<String>) -> Self {
        self.repository = Some(repository.into());
        self
    }

    pub fn config_hash(mut self, hash: impl Into<String>) -> Self {
        self.config_hash = Some(hash.into());
        self
    }

    pub fn timed(mut self, started: DateTime<Utc>, finished: DateTime<Utc>) -> Self {
        self.started = started;
        self.finished = finished;
        self
    }

    pub fn ok(mut self, ok: bool) -> Self {
        self.ok = ok;
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// An event as recorded: its place in the chain and everything the caller gave.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// 1, 2, 3... with no gaps.
    pub seq: u64,
    /// BLAKE3 (hex) of the event's hashed form.
    pub id: String,
    /// The id of the event `seq - 1`, or [`GENESIS`] for the first.
    pub prev_hash: String,
    #[serde(with = "ts")]
    pub recorded_at: DateTime<Utc>,
    /// The host that appended the event.
    pub host: String,
    pub kind: EventKind,
    pub dataset: Option<String>,
    pub repository: Option<String>,
    pub config_hash: Option<String>,
    #[serde(with = "ts")]
    pub started: DateTime<Utc>,
    #[serde(with = "ts")]
    pub finished: DateTime<Utc>,
    pub ok: bool,
    pub summary: String,
    pub details: Value,
}

impl Event {
    /// Whether this recorded event is `e` (everything the caller gave is the same): how an
    /// append that may have committed before its connection broke is recognised.
    pub fn records(&self, e: &NewEvent) -> bool {
        self.kind == e.kind
            && self.dataset == e.dataset
            && self.repository == e.repository
            && self.config_hash == e.config_hash
            && self.started == e.started
            && self.finished == e.finished
            && self.ok == e.ok
            && self.summary == e.summary
            && self.details == e.details
    }

    /// Places `e` in the chain and computes its id.
    pub(crate) fn seal(
        e: NewEvent,
        seq: u64,
        prev_hash: String,
        recorded_at: DateTime<Utc>,
        host: String,
    ) -> (Event, String) {
        let mut event = Event {
            seq,
            id: String::new(),
            prev_hash,
            recorded_at,
            host,
            kind: e.kind,
            dataset: e.dataset,
            repository: e.repository,
            config_hash: e.config_hash,
            started: e.started,
            finished: e.finished,
            ok: e.ok,
            summary: e.summary,
            details: e.details,
        };
        let text = event.hashed_text();
        event.id = hash_hex(text.as_bytes());
        (event, text)
    }

    /// The canonical text the id is the hash of.
    pub fn hashed_text(&self) -> String {
        canonical_json(&self.hashed_value())
    }

    fn hashed_value(&self) -> Value {
        let mut v = serde_json::to_value(self).expect("an event always serializes");
        let obj = v.as_object_mut().expect("an event serializes to an object");
        obj.remove("id");
        obj.insert("v".into(), Value::from(FORMAT_VERSION));
        v
    }

    /// One line of the JSONL export (without the newline): `{"event":HASHED_TEXT,"id":"ID"}`.
    pub fn export_line(&self) -> String {
        export_line_of(&self.id, &self.hashed_text())
    }

    /// Recomputes the id from the content.
    pub fn computed_id(&self) -> String {
        hash_hex(self.hashed_text().as_bytes())
    }
}

/// A JSONL line wrapping a stored hashed text verbatim: `{"event":TEXT,"id":"ID"}` (keys sorted,
/// so the line is canonical JSON when the text is). Verifying a line hashes TEXT byte for byte,
/// without re-serializing anything.
pub(crate) fn export_line_of(id: &str, text: &str) -> String {
    format!(
        "{{\"event\":{text},\"id\":{}}}",
        serde_json::Value::String(id.to_string())
    )
}

/// Splits a JSONL line into the stored hashed text and the id, without parsing the text.
pub(crate) fn split_export_line(line: &str) -> Result<(&str, String)> {
    let bad = |what: &str| Error::Malformed(format!("not an exported event line: {what}"));
    let rest = line
        .strip_prefix("{\"event\":")
        .ok_or_else(|| bad("it does not start with {\"event\":"))?;
    let (text, id) = rest
        .rsplit_once(",\"id\":")
        .ok_or_else(|| bad("it has no id"))?;
    let id = id
        .strip_suffix('}')
        .and_then(|id| id.strip_prefix('"'))
        .and_then(|id| id.strip_suffix('"'))
        .filter(|id| !id.contains(['"', '\\']))
        .ok_or_else(|| bad("the id is not a plain string at the end of the line"))?;
    Ok((text, id.to_string()))
}

/// Parses a hashed form (as stored) back into an event carrying `id`. Does not check the hash.
pub(crate) fn event_from_hashed(text: &str, id: &str) -> Result<Event> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Error::Malformed(format!("event text is not JSON: {e}")))?;
    event_from_hashed_value(value, id)
}

fn event_from_hashed_value(mut value: Value, id: &str) -> Result<Event> {
    let obj = value
        .as_object_mut()
        .ok_or_else(|| Error::Malformed("event text is not a JSON object".into()))?;
    match obj.remove("v") {
        Some(v) if v.as_u64() == Some(FORMAT_VERSION) => {}
        Some(v) => {
            return Err(Error::Malformed(format!(
                "unsupported event format version {v}"
            )));
        }
        None => return Err(Error::Malformed("event text has no format version".into())),
    }
    if obj.contains_key("id") {
        return Err(Error::Malformed(
            "hashed event text must not contain its own id".into(),
        ));
    }
    obj.insert("id".into(), Value::String(id.to_string()));
    serde_json::from_value(value).map_err(|e| {
        // serde quotes the offending field or value, which may hold a newline.
        let reason: String = e
            .to_string()
            .chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect();
        Error::Malformed(format!("event text does not describe an event: {reason}"))
    })
}

/// BLAKE3 of `bytes`, lowercase hex.
pub fn hash_hex(bytes: &[u8]) -> String {
    hex::encode(blake3::hash(bytes).as_bytes())
}

/// The timestamp text used everywhere (hashed form and database columns): RFC 3339, UTC, `Z`,
/// nine fractional digits. Fixed width, so text order is time order (years 0000-9999).
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

pub fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::Malformed(format!("bad timestamp {s:?}: {e}")))
}

pub(crate) mod ts {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_time(&s).map_err(serde::de::Error::custom)
    }
}

/// Canonical JSON text of `v`: object keys sorted bytewise at every depth, no whitespace.
/// Independent of serde_json's `preserve_order` feature (which another crate could turn on).
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).expect("a string serializes"));
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&serde_json::to_string(scalar).expect("a scalar serializes")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((".{0,8}", inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Canonical text parses back to the same value and re-canonicalizes to the same text,
        /// so verification recomputes exactly what append hashed.
        #[test]
        fn canonical_json_is_stable(v in arb_json()) {
            let text = canonical_json(&v);
            let back: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(&back, &v);
            prop_assert_eq!(canonical_json(&back), text);
        }

        /// The order keys were inserted in does not matter.
        #[test]
        fn canonical_json_ignores_key_order(kv in prop::collection::btree_map(".{0,8}", any::<i32>(), 0..8)) {
            let forward: serde_json::Map<String, Value> = kv.iter().map(|(k, v)| (k.clone(), Value::from(*v))).collect();
            let backward: serde_json::Map<String, Value> = kv.iter().rev().map(|(k, v)| (k.clone(), Value::from(*v))).collect();
            prop_assert_eq!(canonical_json(&Value::Object(forward)), canonical_json(&Value::Object(backward)));
        }
    }

    #[test]
    fn kinds_round_trip_as_snake_case() {
        for (k, name) in EventKind::NAMED.iter() {
            assert_eq!(k.as_str(), *name);
            assert_eq!(EventKind::parse(name), *k);
            assert_eq!(serde_json::to_string(k).unwrap(), format!("\"{name}\""));
        }
        let other: EventKind = serde_json::from_str("\"key_rotation\"").unwrap();
        assert_eq!(other, EventKind::Other("key_rotation".into()));
        assert_eq!(serde_json::to_string(&other).unwrap(), "\"key_rotation\"");
    }

    #[test]
    fn sealed_event_round_trips_through_its_text() {
        let t = DateTime::parse_from_rfc3339("2026-03-01T02:03:04.5Z")
            .unwrap()
            .with_timezone(&Utc);
        let e = NewEvent::new(EventKind::Backup, "nightly")
            .dataset("db")
            .timed(t, t)
            .details(serde_json::json!({"z": 1, "a": [1.5, {"y": null, "b": "é\n"}]}));
        let (event, text) = Event::seal(e, 1, GENESIS.into(), t, "h".into());
        assert!(text.starts_with("{\"config_hash\":null,\"dataset\":\"db\",\"details\":{\"a\":"));
        assert!(text.contains("\"started\":\"2026-03-01T02:03:04.500000000Z\""));
        assert!(text.ends_with(",\"v\":1}"));
        assert_eq!(event.id, hash_hex(text.as_bytes()));
        let back = event_from_hashed(&text, &event.id).unwrap();
        assert_eq!(back, event);
        assert_eq!(back.hashed_text(), text);
        let line = event.export_line();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["id"], Value::String(event.id.clone()));
        assert_eq!(canonical_json(&v), line);
        let (t, id) = split_export_line(&line).unwrap();
        assert_eq!((t, id.as_str()), (text.as_str(), event.id.as_str()));
    }
}
