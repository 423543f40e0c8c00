//! Streaming export of one client's audit events as JSONL or CSV.
//!
//! Owns the export formats (field names, the CSV columns, quoting and the spreadsheet-formula defence), the
//! parsing of an export request at the boundary, and the keyset-paginated reads behind the stream. It must
//! never read another tenant's events (every query takes the [`ClientId`]), never hold a whole range in
//! memory (it reads [`BATCH`] events at a time, by id), and never reshape an event: each line or row is the
//! event exactly as [`AuditEvent`] serialises, so fields added to it later (the hash chain) are exported too.

use std::fmt::Write as _;

use bytes::Bytes;
use chrono::{DateTime, SubsecRound, Utc};
use futures_util::stream::{self, Stream};
use serde_json::{Map, Value};

use super::{ActionType, Actor, AuditEvent, NewEvent};
use crate::context::RequestContext;
use crate::db::{on_pool, AgentId, AuditEventId, ClientId, Db, DbError};

/// Events read per query: the most an export holds in memory at once.
pub const BATCH: u32 = 500;
/// Longest range one export may cover; longer ones are refused (export in parts).
pub const MAX_RANGE_DAYS: i64 = 366;

/// The CSV columns every export starts with, in this order. Fields the event has beyond these (e.g. the
/// hash chain's) follow in alphabetical order.
pub const CSV_COLUMNS: [&str; 13] = [
    "id",
    "created_at",
    "client_id",
    "agent_id",
    "actor_kind",
    "actor_id",
    "action_type",
    "target",
    "ip_address",
    "metadata",
    "seq",
    "prev_hash",
    "hash",
];

/// Characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection"); a cell starting with
/// one is prefixed with `'`.
const FORMULA_TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// An export request that does not make sense. The message is meant for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    #[error("format must be `jsonl` or `csv`")]
    Format,
    #[error("`{0}` is required: an RFC 3339 time such as 2026-11-01T00:00:00Z")]
    MissingTime(&'static str),
    #[error("`{0}` must be an RFC 3339 time such as 2026-11-01T00:00:00Z")]
    BadTime(&'static str),
    #[error("`to` must be later than `from` (the range is [from, to))")]
    EmptyRange,
    #[error("a range covers at most {MAX_RANGE_DAYS} days; export longer periods in parts")]
    RangeTooLong,
    #[error("`agent` must be an agent id (a UUID)")]
    Agent,
}

/// The two export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line (`\n`), each the serialised [`AuditEvent`].
    Jsonl,
    /// RFC 4180 CSV: header row, CRLF line ends, [`CSV_COLUMNS`] first, metadata as a JSON string.
    Csv,
}

impl Format {
    pub fn parse(s: &str) -> Result<Self, ExportError> {
        match s {
            "jsonl" => Ok(Self::Jsonl),
            "csv" => Ok(Self::Csv),
            _ => Err(ExportError::Format),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jsonl => "jsonl",
            Self::Csv => "csv",
        }
    }

    /// The `Content-Type` of a download in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jsonl => "application/x-ndjson",
            Self::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// A half-open time range `[from, to)`, at most [`MAX_RANGE_DAYS`] long, at microsecond precision (what
/// both databases store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

impl TimeRange {
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Self, ExportError> {
        let (from, to) = (from.trunc_subsecs(6), to.trunc_subsecs(6));
        if to <= from {
            return Err(ExportError::EmptyRange);
        }
        if to - from > chrono::Duration::days(MAX_RANGE_DAYS) {
            return Err(ExportError::RangeTooLong);
        }
        Ok(Self { from, to })
    }

    /// Parses two RFC 3339 times (any offset; converted to UTC).
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<Self, ExportError> {
        let parse = |name: &'static str, text: Option<&str>| {
            let text = text.filter(|t| !t.is_empty()).ok_or(ExportError::MissingTime(name))?;
            DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).map_err(|_| ExportError::BadTime(name))
        };
        Self::new(parse("from", from)?, parse("to", to)?)
    }

    pub fn from(&self) -> DateTime<Utc> {
        self.from
    }

    pub fn to(&self) -> DateTime<Utc> {
        self.to
    }
}

/// What to export: a range of one client's events, optionally of one agent, in one format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    pub range: TimeRange,
    pub agent: Option<AgentId>,
    pub format: Format,
}

impl ExportRequest {
    /// Parses the query parameters of an export (`format`, `from`, `to`, optional `agent`).
    pub fn parse(
        format: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
        agent: Option<&str>,
    ) -> Result<Self, ExportError> {
        let format = Format::parse(format.unwrap_or_default())?;
        let range = TimeRange::parse(from, to)?;
        let agent = match agent.filter(|a| !a.is_empty()) {
            Some(a) => Some(a.parse::<AgentId>().map_err(|_| ExportError::Agent)?),
            None => None,
        };
        Ok(Self { range, agent, format })
    }

    /// `deployclaw-audit-YYYYMMDD-YYYYMMDD.jsonl` (the dates of `from` and `to`, UTC).
    pub fn file_name(&self) -> String {
        format!(
            "deployclaw-audit-{}-{}.{}",
            self.range.from.format("%Y%m%d"),
            self.range.to.format("%Y%m%d"),
            self.format.as_str()
        )
    }
}

/// Records that `actor` exported (`audit.exported`, with format, range and agent filter), then returns the
/// export stream. The event is recorded before the first byte is sent: an export that is cut short was still
/// an export.
pub async fn start(
    db: &Db,
    client: ClientId,
    actor: Actor,
    ctx: &RequestContext,
    request: ExportRequest,
) -> Result<impl Stream<Item = Result<Bytes, DbError>> + Send + 'static, DbError> {
    let metadata = serde_json::json!({
        "format": request.format.as_str(),
        "from": request.range.from,
        "to": request.range.to,
        "agent_id": request.agent,
    });
    let event = NewEvent::new(Some(client), actor, ActionType::known("audit.exported")).metadata(metadata).request(ctx);
    super::append(db, event).await?;
    Ok(export(db.clone(), client, request))
}

/// The events of `client` in the request's range (and of its agent, when given), oldest first, as chunks of
/// the chosen format: one chunk per batch of [`BATCH`] events. The stream ends after the last event; a
/// database error ends it with that error.
pub fn export(
    db: Db,
    client: ClientId,
    request: ExportRequest,
) -> impl Stream<Item = Result<Bytes, DbError>> + Send + 'static {
    export_in_batches(db, client, request, BATCH)
}

/// [`export`] with another batch size (1 to 10,000): for tests and tuning.
pub fn export_in_batches(
    db: Db,
    client: ClientId,
    request: ExportRequest,
    batch: u32,
) -> impl Stream<Item = Result<Bytes, DbError>> + Send + 'static {
    let batch = batch.clamp(1, 10_000);
    let state = Cursor { db, client, request, batch, after: AuditEventId(0), columns: None, done: false };
    stream::try_unfold(state, |mut st| async move {
        if st.done {
            return Ok(None);
        }
        let filter =
            Filter { from: Some(st.request.range.from), to: Some(st.request.range.to), agent: st.request.agent };
        let events = page(&st.db, st.client, st.after, &filter, st.batch)
            .await
            .inspect_err(|e| tracing::error!(error = %e, "audit export cut short: a batch could not be read"))?;
        st.done = events.len() < st.batch as usize;
        let mut out = String::with_capacity(events.len() * 384 + 128);
        if st.request.format == Format::Csv && st.columns.is_none() {
            let columns = csv_columns(events.first())?;
            write_csv_row(&mut out, columns.iter().map(|c| Some(Value::String(c.clone()))).collect::<Vec<_>>().iter());
            st.columns = Some(columns);
        }
        for event in &events {
            match st.request.format {
                Format::Jsonl => {
                    out.push_str(&serde_json::to_string(event).map_err(serialise_error)?);
                    out.push('\n');
                }
                Format::Csv => {
                    let row = event_object(event)?;
                    let columns = st.columns.as_deref().unwrap_or_default();
                    write_csv_row(&mut out, columns.iter().map(|c| row.get(c).cloned()).collect::<Vec<_>>().iter());
                }
            }
            st.after = event.id;
        }
        if out.is_empty() {
            return Ok(None);
        }
        Ok(Some((Bytes::from(out), st)))
    })
}

struct Cursor {
    db: Db,
    client: ClientId,
    request: ExportRequest,
    batch: u32,
    after: AuditEventId,
    columns: Option<Vec<String>>,
    done: bool,
}

/// Which events of a client a [`page`] reads.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    /// Inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: Option<DateTime<Utc>>,
    pub agent: Option<AgentId>,
}

/// Up to `limit` events of `client` with an id above `after`, matching `filter`, in id order. Keyset
/// pagination: the next page starts after the last id of this one, so each query is an index range scan
/// (`idx_audit_client` is `(client_id, id)`), whatever the depth.
pub(crate) async fn page(
    db: &Db,
    client: ClientId,
    after: AuditEventId,
    filter: &Filter,
    limit: u32,
) -> Result<Vec<AuditEvent>, DbError> {
    // `SELECT *` so that every column `AuditEvent` maps (now and after new fields land) is read.
    let mut sql = String::from("SELECT * FROM audit_logs WHERE client_id = $1 AND id > $2");
    let mut n = 2;
    let mut condition = |sql: &mut String, text: &str| {
        n += 1;
        let _ = write!(sql, " AND {text} ${n}");
    };
    if filter.from.is_some() {
        condition(&mut sql, "created_at >=");
    }
    if filter.to.is_some() {
        condition(&mut sql, "created_at <");
    }
    if filter.agent.is_some() {
        condition(&mut sql, "agent_id =");
    }
    n += 1;
    let _ = write!(sql, " ORDER BY id LIMIT ${n}");
    Ok(on_pool!(db, |p| {
        let mut q = sqlx::query_as::<_, AuditEvent>(&sql).bind(client).bind(after.0);
        if let Some(from) = filter.from {
            q = q.bind(from);
        }
        if let Some(to) = filter.to {
            q = q.bind(to);
        }
        if let Some(agent) = filter.agent {
            q = q.bind(agent);
        }
        q.bind(i64::from(limit)).fetch_all(p).await?
    }))
}

/// An event as the JSON object every export format and the SIEM forwarder carry.
pub(crate) fn event_object(event: &AuditEvent) -> Result<Map<String, Value>, DbError> {
    match serde_json::to_value(event).map_err(serialise_error)? {
        Value::Object(map) => Ok(map),
        _ => Err(DbError::Invalid("an audit event did not serialise to an object".into())),
    }
}

fn serialise_error(e: serde_json::Error) -> DbError {
    tracing::error!(error = %e, "could not serialise an audit event");
    DbError::Invalid("an audit event could not be serialised".into())
}

/// [`CSV_COLUMNS`], then any further fields `first` has, alphabetically.
fn csv_columns(first: Option<&AuditEvent>) -> Result<Vec<String>, DbError> {
    let mut columns: Vec<String> = CSV_COLUMNS.iter().map(|c| c.to_string()).collect();
    if let Some(event) = first {
        let mut extra: Vec<String> =
            event_object(event)?.keys().filter(|k| !CSV_COLUMNS.contains(&k.as_str())).cloned().collect();
        extra.sort();
        columns.extend(extra);
    }
    Ok(columns)
}

/// Appends one CSV record and its CRLF.
fn write_csv_row<'a>(out: &mut String, cells: impl Iterator<Item = &'a Option<Value>>) {
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let text = match cell {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        push_csv_cell(out, &text);
    }
    out.push_str("\r\n");
}

/// One cell: formula triggers neutralised with a leading `'`, then quoted (quotes doubled) when it holds a
/// comma, quote, CR or LF.
pub fn push_csv_cell(out: &mut String, text: &str) {
    let defused = text.starts_with(FORMULA_TRIGGERS);
    let quoted = text.contains([',', '"', '\r', '\n']);
    if quoted {
        out.push('"');
    }
    if defused {
        out.push('\'');
    }
    if quoted {
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(text: &str) -> String {
        let mut out = String::new();
        push_csv_cell(&mut out, text);
        out
    }

    #[test]
    fn csv_cells_are_quoted_per_rfc_4180_and_formulas_are_defused() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell(""), "");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(cell("=1+1"), "'=1+1");
        assert_eq!(cell("+1"), "'+1");
        assert_eq!(cell("-1"), "'-1");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("\tx"), "'\tx");
        assert_eq!(cell("\rx"), "\"'\rx\"");
        assert_eq!(cell("=HYPERLINK(\"http://x\",\"y\")"), "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"");
        assert_eq!(cell("a=b"), "a=b", "only a leading trigger is a formula");
    }

    #[test]
    fn requests_are_parsed_at_the_boundary_with_clear_errors() {
        let ok =
            ExportRequest::parse(Some("csv"), Some("2026-11-01T00:00:00Z"), Some("2026-12-01T00:00:00+01:00"), None)
                .unwrap();
        assert_eq!(ok.format, Format::Csv);
        assert_eq!(ok.range.to().to_rfc3339(), "2026-11-30T23:00:00+00:00");
        assert_eq!(ok.file_name(), "deployclaw-audit-20261101-20261130.csv");
        let p = |f: &str, from: &str, to: &str, agent: Option<&str>| {
            ExportRequest::parse(Some(f), Some(from), Some(to), agent).unwrap_err()
        };
        assert_eq!(p("xml", "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", None), ExportError::Format);
        assert_eq!(p("jsonl", "yesterday", "2026-11-02T00:00:00Z", None), ExportError::BadTime("from"));
        assert_eq!(p("jsonl", "2026-11-02T00:00:00Z", "2026-11-01T00:00:00Z", None), ExportError::EmptyRange);
        assert_eq!(p("jsonl", "2026-11-02T00:00:00Z", "2026-11-02T00:00:00Z", None), ExportError::EmptyRange);
        assert_eq!(p("jsonl", "2025-01-01T00:00:00Z", "2026-01-03T00:00:00Z", None), ExportError::RangeTooLong);
        assert_eq!(p("jsonl", "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", Some("bot")), ExportError::Agent);
        assert_eq!(
            ExportRequest::parse(Some("jsonl"), None, Some("2026-11-02T00:00:00Z"), None).unwrap_err(),
            ExportError::MissingTime("from")
        );
        assert!(ExportRequest::parse(Some("jsonl"), Some("2025-01-01T00:00:00Z"), Some("2026-01-02T00:00:00Z"), None)
            .is_ok());
    }
}
