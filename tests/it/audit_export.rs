//! Audit export (JSONL, CSV; streamed in batches) and SIEM forwarding against local receivers on 127.0.0.1.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deployclaw::audit::export::{self, ExportRequest, Format, TimeRange};
use deployclaw::audit::{self, ActionType, Actor, AuditEvent, NewEvent};
use deployclaw::db::{AgentId, ClientId, Db, UserId};
use futures_util::TryStreamExt;
use serde_json::{json, Value};

use crate::support::{db_test, new_client};

fn action(s: &str) -> ActionType {
    ActionType::parse(s).unwrap()
}

/// Appends `n` events of `client` (with a pause so that each has its own time) and returns them, oldest first.
pub async fn append_events(db: &Db, client: ClientId, n: usize, agent: Option<AgentId>) -> Vec<AuditEvent> {
    for i in 0..n {
        let mut e = NewEvent::new(Some(client), Actor::Platform, action("agent.tested")).metadata(json!({ "n": i }));
        if let Some(a) = agent {
            e = e.agent(a);
        }
        audit::append(db, e).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    all_events(db, client).await
}

/// Every event of `client`, oldest first.
pub async fn all_events(db: &Db, client: ClientId) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    let mut before = None;
    loop {
        let page = audit::recent(db, client, before, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        out.extend(page);
    }
    out.reverse();
    out
}

fn request(format: Format, from: DateTime<Utc>, to: DateTime<Utc>, agent: Option<AgentId>) -> ExportRequest {
    ExportRequest { range: TimeRange::new(from, to).unwrap(), agent, format }
}

fn wide(format: Format) -> ExportRequest {
    let now = Utc::now();
    request(format, now - chrono::Duration::days(1), now + chrono::Duration::days(1), None)
}

async fn collect(db: &Db, client: ClientId, req: ExportRequest, batch: u32) -> (Vec<bytes::Bytes>, String) {
    let chunks: Vec<bytes::Bytes> =
        export::export_in_batches(db.clone(), client, req, batch).try_collect().await.unwrap();
    let text = chunks.iter().map(|c| std::str::from_utf8(c).unwrap()).collect::<String>();
    (chunks, text)
}

fn jsonl_ids(text: &str) -> Vec<i64> {
    assert!(text.is_empty() || text.ends_with('\n'), "every line ends with \\n");
    text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_i64().unwrap()).collect()
}

/// A strict RFC 4180 reader for the tests: records end in CRLF; quoted fields may hold anything.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut in_quotes = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if at_start => in_quotes = true,
            ',' => {
                row.push(std::mem::take(&mut field));
                at_start = true;
                continue;
            }
            '\r' => {
                assert_eq!(chars.next(), Some('\n'), "a bare CR ends no record");
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                at_start = true;
                continue;
            }
            '\n' => panic!("a bare LF outside quotes: records end in CRLF"),
            '"' => panic!("a quote inside an unquoted field"),
            c => field.push(c),
        }
        at_start = false;
    }
    assert!(field.is_empty() && row.is_empty(), "the last record ends in CRLF");
    rows
}

db_test!(export_streams_only_one_clients_range_in_id_order, |t| {
    let acme = new_client(&t.db, "acme").await.id;
    let globex = new_client(&t.db, "globex").await.id;
    append_events(&t.db, globex, 3, None).await;
    let events = append_events(&t.db, acme, 12, None).await;
    append_events(&t.db, globex, 3, None).await;
    assert_eq!(events.len(), 12);

    // [from, to): the event at `from` is in, the one at `to` is out. Batches of 4 cross the range's edges.
    let (from, to) = (events[3].created_at, events[9].created_at);
    let (_, text) = collect(&t.db, acme, request(Format::Jsonl, from, to, None), 4).await;
    let want: Vec<i64> = events[3..9].iter().map(|e| e.id.0).collect();
    assert_eq!(jsonl_ids(&text), want);
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["client_id"], json!(acme), "another tenant's event exported: {line}");
    }

    // The other tenant sees only its own six.
    let (_, text) = collect(&t.db, globex, wide(Format::Jsonl), 500).await;
    assert_eq!(jsonl_ids(&text).len(), 6);

    // An empty range gives an empty JSONL file and a header-only CSV.
    let later = Utc::now() + chrono::Duration::hours(1);
    let (chunks, text) =
        collect(&t.db, acme, request(Format::Jsonl, later, later + chrono::Duration::hours(1), None), 4).await;
    assert!(chunks.is_empty() && text.is_empty());
    let (_, text) =
        collect(&t.db, acme, request(Format::Csv, later, later + chrono::Duration::hours(1), None), 4).await;
    assert_eq!(parse_csv(&text), vec![export::CSV_COLUMNS.iter().map(|c| c.to_string()).collect::<Vec<_>>()]);
});

db_test!(export_filters_by_agent, |t| {
    let acme = new_client(&t.db, "acme").await.id;
    let bot = AgentId::new();
    append_events(&t.db, acme, 3, None).await;
    let all = append_events(&t.db, acme, 4, Some(bot)).await;
    let (_, text) = collect(
        &t.db,
        acme,
        request(Format::Jsonl, all[0].created_at, Utc::now() + chrono::Duration::hours(1), Some(bot)),
        2,
    )
    .await;
    let want: Vec<i64> = all.iter().filter(|e| e.agent_id == Some(bot)).map(|e| e.id.0).collect();
    assert_eq!(want.len(), 4);
    assert_eq!(jsonl_ids(&text), want);
});

db_test!(every_field_of_an_event_is_exported_as_it_serialises, |t| {
    let acme = new_client(&t.db, "acme").await.id;
    let user = UserId::new();
    audit::append(
        &t.db,
        NewEvent::new(Some(acme), Actor::User(user), action("agent.deployed"))
            .agent(AgentId::new())
            .target("support-bot")
            .metadata(json!({"plan": "pro", "nested": {"a": [1, 2]}}))
            .ip("203.0.113.7".parse().unwrap()),
    )
    .await
    .unwrap();
    let stored = all_events(&t.db, acme).await.remove(0);
    let expected = serde_json::to_value(&stored).unwrap();

    let (_, text) = collect(&t.db, acme, wide(Format::Jsonl), 500).await;
    let line: Value = serde_json::from_str(text.trim_end()).unwrap();
    assert_eq!(line, expected, "the JSONL line is the event, every field");
    assert_eq!(line["metadata"]["nested"]["a"], json!([1, 2]), "metadata is a JSON object, not a string");

    let (_, text) = collect(&t.db, acme, wide(Format::Csv), 500).await;
    let rows = parse_csv(&text);
    assert_eq!(rows.len(), 2);
    let header = &rows[0];
    assert_eq!(&header[..10], &export::CSV_COLUMNS.map(String::from)[..], "the fixed columns come first");
    let object = expected.as_object().unwrap();
    assert_eq!(header.len(), object.len(), "one column per field: {header:?}");
    for (name, value) in header.iter().zip(&rows[1]) {
        let want = match &object[name] {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        assert_eq!(value, &want, "column {name}");
    }
    let metadata: Value = serde_json::from_str(&rows[1][9]).unwrap();
    assert_eq!(metadata, json!({"plan": "pro", "nested": {"a": [1, 2]}}));
});

db_test!(csv_export_quotes_per_rfc_4180_and_defuses_spreadsheet_formulas, |t| {
    let acme = new_client(&t.db, "acme").await.id;
    let nasty = [
        "=HYPERLINK(\"http://evil.example\",\"click\")",
        "+1+1",
        "-2+3",
        "@SUM(A1:A9)",
        "\tindent",
        "\rcarriage",
        "comma, separated",
        "multi\nline \"quoted\"",
    ];
    for target in nasty {
        audit::append(&t.db, NewEvent::new(Some(acme), Actor::Platform, action("agent.tested")).target(target))
            .await
            .unwrap();
    }
    let (_, text) = collect(&t.db, acme, wide(Format::Csv), 3).await;
    assert!(text.contains("\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"click\"\")\""), "{text}");
    let rows = parse_csv(&text);
    assert_eq!(rows.len(), nasty.len() + 1, "one header and one record per event");
    let target = rows[0].iter().position(|c| c == "target").unwrap();
    for (row, original) in rows[1..].iter().zip(nasty) {
        let cell = &row[target];
        if original.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            assert_eq!(cell, &format!("'{original}"), "a formula trigger is defused");
        } else {
            assert_eq!(cell, original, "the text survives quoting");
        }
    }
    // No cell anywhere starts with a formula trigger.
    for row in &rows {
        for cell in row {
            assert!(!cell.starts_with(['=', '+', '-', '@', '\t', '\r']), "live formula in {cell:?}");
        }
    }
});

db_test!(a_large_export_is_complete_in_order_and_read_in_bounded_batches, |t| {
    let acme = new_client(&t.db, "acme").await.id;
    for i in 0..1234 {
        audit::append(
            &t.db,
            NewEvent::new(Some(acme), Actor::Platform, action("agent.tested")).metadata(json!({ "n": i })),
        )
        .await
        .unwrap();
    }
    let events = all_events(&t.db, acme).await;
    let started = std::time::Instant::now();
    let (chunks, text) = collect(&t.db, acme, wide(Format::Jsonl), 500).await;
    let elapsed = started.elapsed();
    assert_eq!(chunks.len(), 3, "1,234 events in batches of 500 are three chunks");
    assert!(chunks.iter().all(|c| c.iter().filter(|b| **b == b'\n').count() <= 500));
    assert_eq!(jsonl_ids(&text), events.iter().map(|e| e.id.0).collect::<Vec<_>>());
    let ns: Vec<i64> =
        text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["metadata"]["n"].as_i64().unwrap()).collect();
    assert_eq!(ns, (0..1234).collect::<Vec<_>>());
    println!(
        "export {:?}: 1234 events as JSONL in {:?} ({:.0} events/s)",
        t.db.backend(),
        elapsed,
        1234.0 / elapsed.as_secs_f64()
    );
    let (chunks, text) = collect(&t.db, acme, wide(Format::Csv), 500).await;
    assert_eq!(chunks.len(), 3);
    assert_eq!(parse_csv(&text).len(), 1235);
});

db_test!(starting_an_export_records_it_in_the_audit_trail, |t| {
    let acme = new_client(&t.db, "acme").await.id;
    let user = UserId::new();
    let ctx = deployclaw::identity::sign_in::RequestContext {
        ip: "198.51.100.4".parse().unwrap(),
        user_agent: Some("test-browser".into()),
    };
    let req =
        request(Format::Csv, "2026-01-01T00:00:00Z".parse().unwrap(), "2026-02-01T00:00:00Z".parse().unwrap(), None);
    let stream = export::start(&t.db, acme, Actor::User(user), &ctx, req).await.unwrap();
    let _: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
    let events = audit::recent(&t.db, acme, None, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.action_type, "audit.exported");
    assert_eq!(e.actor_id, Some(user.as_uuid()));
    assert_eq!(e.ip_address.as_deref(), Some("198.51.100.4"));
    assert_eq!(e.metadata.0["format"], "csv");
    assert_eq!(e.metadata.0["from"], "2026-01-01T00:00:00Z");
    assert_eq!(e.metadata.0["to"], "2026-02-01T00:00:00Z");
});
