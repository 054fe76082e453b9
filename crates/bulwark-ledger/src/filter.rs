//! Which events to read.

use chrono::{DateTime, Utc};

use crate::event::{EventKind, format_time};

/// A selection of events. The default selects every event, oldest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventFilter {
    pub kind: Option<EventKind>,
    pub dataset: Option<String>,
    pub repository: Option<String>,
    pub ok: Option<bool>,
    /// Events that started at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Events that started before this instant.
    pub until: Option<DateTime<Utc>>,
    /// Events with a greater sequence number.
    pub after_seq: Option<u64>,
    /// Newest (highest seq) first instead of oldest first.
    pub newest_first: bool,
    pub limit: Option<usize>,
}

impl EventFilter {
    pub fn all() -> EventFilter {
        EventFilter::default()
    }

    pub fn kind(mut self, kind: EventKind) -> Self {
        self.kind = Some(kind);
        self
    }

    pub fn dataset(mut self, dataset: impl Into<String>) -> Self {
        self.dataset = Some(dataset.into());
        self
    }

    pub fn repository(mut self, repository: impl Into<String>) -> Self {
        self.repository = Some(repository.into());
        self
    }

    pub fn ok(mut self, ok: bool) -> Self {
        self.ok = Some(ok);
        self
    }

    pub fn since(mut self, t: DateTime<Utc>) -> Self {
        self.since = Some(t);
        self
    }

    pub fn until(mut self, t: DateTime<Utc>) -> Self {
        self.until = Some(t);
        self
    }

    pub fn after_seq(mut self, seq: u64) -> Self {
        self.after_seq = Some(seq);
        self
    }

    pub fn newest_first(mut self) -> Self {
        self.newest_first = true;
        self
    }

    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }
}

/// A query parameter, converted by each backend.
#[derive(Clone, Debug)]
pub(crate) enum Param {
    Text(String),
    Int(i64),
    Bool(bool),
}

/// `WHERE ... ORDER BY ... LIMIT ...` for `filter`, with placeholders made by `placeholder(n)`
/// (1-based), and the parameters in order.
pub(crate) fn where_clause(
    filter: &EventFilter,
    placeholder: impl Fn(usize) -> String,
) -> (String, Vec<Param>) {
    let mut conds: Vec<String> = Vec::new();
    let mut params = Vec::new();
    let mut add = |cond: &str, p: Param| {
        params.push(p);
        conds.push(cond.replace('?', &placeholder(params.len())));
    };
    if let Some(k) = &filter.kind {
        add("kind = ?", Param::Text(k.as_str().to_string()));
    }
    if let Some(d) = &filter.dataset {
        add("dataset = ?", Param::Text(d.clone()));
    }
    if let Some(r) = &filter.repository {
        add("repository = ?", Param::Text(r.clone()));
    }
    if let Some(ok) = filter.ok {
        add("ok = ?", Param::Bool(ok));
    }
    if let Some(t) = &filter.since {
        add("started >= ?", Param::Text(format_time(t)));
    }
    if let Some(t) = &filter.until {
        add("started < ?", Param::Text(format_time(t)));
    }
    if let Some(s) = filter.after_seq {
        add("seq > ?", Param::Int(i64::try_from(s).unwrap_or(i64::MAX)));
    }
    let mut sql = String::new();
    if !conds.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conds.join(" AND "));
    }
    sql.push_str(if filter.newest_first {
        " ORDER BY seq DESC"
    } else {
        " ORDER BY seq ASC"
    });
    if let Some(n) = filter.limit {
        sql.push_str(&format!(" LIMIT {}", n.min(i64::MAX as usize)));
    }
    (sql, params)
}
