//! Audit export (JSONL, CSV; streamed in batches) and SIEM forwarding against local receivers on 127.0.0.1.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deployclaw::audit::export::{self, ExportRequest, Format, TimeRange};
use deployclaw::audit::{self, ActionType, Actor, AuditEvent, NewEvent};
use deployclaw::db::{AgentId, ClientId, Db, UserId};
use futures_util::TryStreamExt;
use serde_json::{json, Value};

use crate::support::{db_test, eventually, new_client};

fn action(s: &str) -> ActionType {
    ActionType::parse(s).unwrap()
}

/// Appends `n` events of `client`, each at a later time than the one before (the platform clock has moved on
/// before the next is appended), and returns them, oldest first.
pub async fn append_events(db: &Db, client: ClientId, n: usize, agent: Option<AgentId>) -> Vec<AuditEvent> {
    for i in 0..n {
        let before = deployclaw::db::now();
        let mut e = NewEvent::new(Some(client), Actor::Platform, action("agent.tested")).metadata(json!({ "n": i }));
        if let Some(a) = agent {
            e = e.agent(a);
        }
        audit::append(db, e).await.unwrap();
        // Stored times have microseconds: wait for the clock to pass the appended event's time.
        crate::support::eventually("the clock moves on", async || deployclaw::db::now() > before).await;
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
    let fixed = export::CSV_COLUMNS.len();
    assert_eq!(&header[..fixed], &export::CSV_COLUMNS.map(String::from)[..], "the fixed columns come first");
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
    let ctx = deployclaw::context::RequestContext {
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

// ---------------------------------------------------------------------------------------------------------
// SIEM forwarding, against receivers on 127.0.0.1.

mod receivers;

use deployclaw::audit::siem::{
    self, Destination, DestinationId, Endpoint, ForwarderSettings, Kind, NewDestination, StartAt,
};
use deployclaw::db::AuditEventId;
use receivers::{HttpsReceiver, Misbehave, SyslogReceiver, TestCa};

/// Fast settings for tests: loopback allowed, no settle time, small batches, short backoff.
fn test_settings() -> ForwarderSettings {
    ForwarderSettings {
        allow_private_destinations: true,
        poll_interval: Duration::from_millis(20),
        settle: Duration::ZERO,
        batch_size: 7,
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        connect_timeout: Duration::from_secs(30),
        io_timeout: Duration::from_secs(60),
        hostname: "deployclaw.test".into(),
        ..ForwarderSettings::default()
    }
}

fn syslog(kind: Kind, port: u16, ca_pem: Option<String>) -> NewDestination {
    NewDestination {
        name: format!("{} {port}", kind.as_str()),
        kind,
        endpoint: Endpoint::HostPort { host: "127.0.0.1".into(), port },
        ca_pem,
        start: StartAt::Beginning,
    }
}

fn https(url: url::Url, ca_pem: Option<String>) -> NewDestination {
    NewDestination {
        name: "https".into(),
        kind: Kind::HttpsJson,
        endpoint: Endpoint::Url(url),
        ca_pem,
        start: StartAt::Beginning,
    }
}

/// Runs the forwarder until `destination`'s cursor reaches `last`, then stops it.
async fn forward_until(
    db: &Db,
    destination: &Destination,
    last: AuditEventId,
    settings: ForwarderSettings,
) -> Destination {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(siem::run(db.clone(), settings, async move {
        let _ = stopped.await;
    }));
    let mut done = None;
    eventually("delivered up to the last event", async || {
        let d = siem::get(db, destination.client_id, destination.id).await.unwrap();
        let delivered = d.cursor == last;
        done = Some(d);
        delivered
    })
    .await;
    let _ = stop.send(());
    tokio::time::timeout(crate::support::PATIENCE, task).await.expect("the forwarder stops").unwrap();
    done.expect("read at least once")
}

/// The event id carried by a syslog message, after checking the RFC 5424 header and that the structured data
/// agrees with the JSON.
fn syslog_event(message: &str, client: ClientId) -> i64 {
    assert!(!message.starts_with("MALFORMED"), "{message}");
    let mut parts = message.splitn(7, ' ');
    assert_eq!(parts.next(), Some("<110>1"), "{message}");
    let timestamp = parts.next().unwrap();
    assert!(DateTime::parse_from_rfc3339(timestamp).is_ok() && timestamp.ends_with('Z'), "{timestamp}");
    assert_eq!(parts.next(), Some("deployclaw.test"));
    assert_eq!(parts.next(), Some("deployclaw"));
    assert_eq!(parts.next(), Some("-"));
    assert_eq!(parts.next(), Some("audit"));
    let rest = parts.next().unwrap();
    let (sd, json) = rest.split_once("] ").unwrap();
    assert!(sd.starts_with("[deployclaw@32473 "), "{sd}");
    assert!(json.is_ascii(), "MSG is ASCII JSON, no BOM needed");
    let event: Value = serde_json::from_str(json).unwrap();
    assert_eq!(event["client_id"], json!(client));
    let id = event["id"].as_i64().unwrap();
    assert!(sd.contains(&format!("id=\"{id}\"")) && sd.contains(&format!("client=\"{client}\"")), "{sd}");
    assert!(sd.contains(&format!("action=\"{}\"", event["action_type"].as_str().unwrap())), "{sd}");
    id
}

db_test!(syslog_tcp_delivers_one_clients_events_in_order_as_octet_counted_rfc_5424, |t| {
    let acme = new_client(&t.db, "acme").await.id;
    let globex = new_client(&t.db, "globex").await.id;
    append_events(&t.db, acme, 10, None).await;
    append_events(&t.db, globex, 5, None).await;
    // Non-ASCII and syslog-special characters travel intact.
    audit::append(
        &t.db,
        NewEvent::new(Some(acme), Actor::Platform, action("agent.tested")).target("café ] \"quoted\" \\ 🦀"),
    )
    .await
    .unwrap();
    let events = append_events(&t.db, acme, 10, None).await;
    let receiver = SyslogReceiver::start("127.0.0.1:0".parse().unwrap(), None).await;
    let dest = siem::create(&t.db, acme, syslog(Kind::SyslogTcp, receiver.addr.port(), None)).await.unwrap();
    assert_eq!(dest.cursor, AuditEventId(0));

    let done = forward_until(&t.db, &dest, events.last().unwrap().id, test_settings()).await;
    assert!(done.last_error.is_none() && done.last_delivered_at.is_some(), "{done:?}");
    // Syslog has no acknowledgement: the cursor moves once the frames are flushed, maybe before the receiver
    // has read them.
    eventually("the receiver reads every frame", async || receiver.messages().len() >= events.len()).await;
    let messages = receiver.messages();
    let ids: Vec<i64> = messages.iter().map(|m| syslog_event(m, acme)).collect();
    assert_eq!(ids, events.iter().map(|e| e.id.0).collect::<Vec<_>>(), "every acme event once, in order");
    // (Found by a word that cannot occur in the hex of a hash.)
    let special = messages.iter().find(|m| m.contains("quoted")).unwrap();
    let json: Value = serde_json::from_str(special.split_once("] ").unwrap().1).unwrap();
    assert_eq!(json["target"], "café ] \"quoted\" \\ 🦀");
});

db_test!(syslog_over_tls_trusts_the_destinations_ca_and_only_it, |t| {
    let acme = new_client(&t.db, "acme").await.id;
    let events = append_events(&t.db, acme, 15, None).await;
    let ca = TestCa::new(false);
    let receiver = SyslogReceiver::start("127.0.0.1:0".parse().unwrap(), Some(ca.server.clone())).await;

    // Without the CA, the receiver's certificate is not trusted: nothing is delivered, the error says why.
    let untrusted = siem::create(&t.db, acme, syslog(Kind::SyslogTls, receiver.addr.port(), None)).await.unwrap();
    let err = siem::forward(&t.db, &untrusted, &test_settings(), uuid::Uuid::now_v7()).await.unwrap_err();
    assert!(matches!(err, siem::DeliveryError::Tls(_)), "{err:?}");
    let untrusted = siem::get(&t.db, acme, untrusted.id).await.unwrap();
    assert_eq!(untrusted.cursor, AuditEventId(0));
    assert!(untrusted.last_error.as_deref().unwrap_or_default().starts_with("TLS"), "{untrusted:?}");
    assert!(receiver.messages().is_empty());

    let mut trusted = syslog(Kind::SyslogTls, receiver.addr.port(), Some(ca.ca_pem.clone()));
    trusted.name = "trusted".into();
    let trusted = siem::create(&t.db, acme, trusted).await.unwrap();
    forward_until(&t.db, &trusted, events.last().unwrap().id, test_settings()).await;
    eventually("the receiver reads every frame", async || receiver.messages().len() >= events.len()).await;
    let ids: Vec<i64> = receiver.messages().iter().map(|m| syslog_event(m, acme)).collect();
    assert_eq!(ids, events.iter().map(|e| e.id.0).collect::<Vec<_>>());
});

db_test!(a_syslog_receiver_that_is_down_at_first_gets_every_event_once_it_is_up, |t| {
    let acme = new_client(&t.db, "acme").await.id;
    let events = append_events(&t.db, acme, 20, None).await;
    // A port with nobody listening (yet).
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let dest = siem::create(&t.db, acme, syslog(Kind::SyslogTcp, port, None)).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(siem::run(t.db.clone(), test_settings(), async move {
        let _ = stopped.await;
    }));
    eventually("a recorded connection failure", async || {
        siem::get(&t.db, acme, dest.id).await.unwrap().last_error.is_some_and(|e| e.contains("could not connect"))
    })
    .await;
    assert_eq!(siem::get(&t.db, acme, dest.id).await.unwrap().cursor, AuditEventId(0), "nothing acknowledged");
    let receiver = SyslogReceiver::start(format!("127.0.0.1:{port}").parse().unwrap(), None).await;
    let last = events.last().unwrap().id;
    eventually("delivery after the receiver came up", async || {
        siem::get(&t.db, acme, dest.id).await.unwrap().cursor == last
    })
    .await;
    let _ = stop.send(());
    tokio::time::timeout(crate::support::PATIENCE, task).await.unwrap().unwrap();
    eventually("the receiver reads every frame", async || receiver.messages().len() >= events.len()).await;
    let ids: Vec<i64> = receiver.messages().iter().map(|m| syslog_event(m, acme)).collect();
    assert_eq!(ids, events.iter().map(|e| e.id.0).collect::<Vec<_>>());
});

db_test!(https_json_survives_dropped_connections_and_500s_and_delivers_every_event_at_least_once, |t| {
    let acme = new_client(&t.db, "acme").await.id;
    let events = append_events(&t.db, acme, 30, None).await;
    let all: Vec<i64> = events.iter().map(|e| e.id.0).collect();
    let ca = TestCa::new(true);
    let script = vec![Misbehave::DropConnection, Misbehave::DropConnection, Misbehave::Fail, Misbehave::StoreAndFail];
    let receiver = HttpsReceiver::start(ca.server.clone(), script).await;
    let dest = siem::create(&t.db, acme, https(receiver.url(), Some(ca.ca_pem.clone()))).await.unwrap();

    let done = forward_until(&t.db, &dest, *events.last().map(|e| &e.id).unwrap(), test_settings()).await;
    assert_eq!(done.cursor.0, *all.last().unwrap(), "the cursor ends at the last event");
    assert!(done.last_error.as_deref().unwrap_or_default().contains("HTTP 500"), "{done:?}");
    assert_eq!(receiver.dropped.load(std::sync::atomic::Ordering::SeqCst), 2);

    let ids = |events: &[Value]| events.iter().map(|e| e["id"].as_i64().unwrap()).collect::<Vec<_>>();
    let acknowledged = ids(&receiver.acknowledged.lock().unwrap());
    assert_eq!(acknowledged, all, "every event acknowledged exactly once, in order");
    let received = ids(&receiver.received.lock().unwrap());
    let mut first_seen = received.clone();
    let mut seen = std::collections::HashSet::new();
    first_seen.retain(|id| seen.insert(*id));
    assert_eq!(first_seen, all, "nothing lost or reordered");
    assert_eq!(received.len(), all.len() + 7, "one batch of 7 twice: stored, not acknowledged, sent again");
    for e in receiver.acknowledged.lock().unwrap().iter() {
        assert_eq!(e["client_id"], json!(acme));
    }
});

db_test!(non_public_destinations_are_refused_unless_the_operator_allows_them, |t| {
    let acme = new_client(&t.db, "acme").await.id;
    let events = append_events(&t.db, acme, 3, None).await;
    let receiver = SyslogReceiver::start("127.0.0.1:0".parse().unwrap(), None).await;
    let ca = TestCa::new(true);
    let web = HttpsReceiver::start(ca.server.clone(), vec![]).await;
    let production = ForwarderSettings { allow_private_destinations: false, ..test_settings() };
    let port = receiver.addr.port();
    let mut destinations = Vec::new();
    for (i, host) in ["127.0.0.1", "localhost", "::1", "127.0.0.2", "::ffff:127.0.0.1"].iter().enumerate() {
        let mut d = syslog(Kind::SyslogTcp, port, None);
        d.name = format!("loopback {i}");
        d.endpoint = Endpoint::HostPort { host: host.to_string(), port };
        destinations.push(siem::create(&t.db, acme, d).await.unwrap());
    }
    let url = format!("https://localhost:{}/ingest", web.addr.port()).parse().unwrap();
    destinations.push(siem::create(&t.db, acme, https(url, Some(ca.ca_pem.clone()))).await.unwrap());
    for d in &destinations {
        let err = siem::forward(&t.db, d, &production, uuid::Uuid::now_v7()).await.unwrap_err();
        assert!(matches!(err, siem::DeliveryError::NonPublicAddress), "{:?}: {err:?}", d.host);
        let stored = siem::get(&t.db, acme, d.id).await.unwrap();
        assert_eq!(stored.cursor, AuditEventId(0));
        let error = stored.last_error.unwrap();
        assert!(error.contains("non-public") && !error.contains("127.0.0"), "no address in the error: {error}");
    }
    assert_eq!(receiver.connections.load(std::sync::atomic::Ordering::SeqCst), 0, "no connection was made");
    assert_eq!(web.requests.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(receiver.messages().is_empty());

    // The same destination with the operator's switch on delivers.
    let delivered = siem::forward(&t.db, &destinations[0], &test_settings(), uuid::Uuid::now_v7()).await.unwrap();
    assert_eq!(delivered.events, 3);
    eventually("the receiver reads the frames", async || receiver.messages().len() == 3).await;
    let ids: Vec<i64> = receiver.messages().iter().map(|m| syslog_event(m, acme)).collect();
    assert_eq!(ids, events.iter().map(|e| e.id.0).collect::<Vec<_>>());
});

db_test!(destinations_are_validated_and_scoped_to_their_client, |t| {
    let acme = new_client(&t.db, "acme").await.id;
    let globex = new_client(&t.db, "globex").await.id;
    let events = append_events(&t.db, acme, 4, None).await;
    let bad = [
        https("http://siem.example/ingest".parse().unwrap(), None),
        https("https://user:pw@siem.example/ingest".parse().unwrap(), None),
        https("https://siem.example/ingest".parse().unwrap(), Some("not a certificate".into())),
        NewDestination {
            endpoint: Endpoint::HostPort { host: "bad host!".into(), port: 514 },
            ..syslog(Kind::SyslogTcp, 514, None)
        },
        NewDestination {
            endpoint: Endpoint::HostPort { host: "siem.example".into(), port: 0 },
            ..syslog(Kind::SyslogTcp, 514, None)
        },
        NewDestination { kind: Kind::HttpsJson, ..syslog(Kind::SyslogTcp, 514, None) },
        NewDestination { name: " ".into(), ..syslog(Kind::SyslogTcp, 514, None) },
    ];
    for new in bad {
        let err = siem::create(&t.db, acme, new.clone()).await.unwrap_err();
        assert!(matches!(err, deployclaw::db::DbError::Invalid(_)), "{new:?} accepted: {err:?}");
    }
    assert!(siem::list(&t.db, acme).await.unwrap().is_empty());

    let mut from_now = syslog(Kind::SyslogTcp, 514, None);
    from_now.start = StartAt::Now;
    let d = siem::create(&t.db, acme, from_now).await.unwrap();
    assert_eq!(d.cursor, events.last().unwrap().id, "starts after the newest event");
    assert_eq!(siem::list(&t.db, acme).await.unwrap(), vec![d.clone()]);
    assert!(siem::list(&t.db, globex).await.unwrap().is_empty());
    let not_found = |r: Result<_, deployclaw::db::DbError>| matches!(r, Err(deployclaw::db::DbError::NotFound));
    assert!(not_found(siem::get(&t.db, globex, d.id).await.map(|_| ())));
    assert!(not_found(siem::set_enabled(&t.db, globex, d.id, false).await));
    assert!(not_found(siem::delete(&t.db, globex, d.id).await));
    assert!(not_found(siem::get(&t.db, acme, DestinationId::new()).await.map(|_| ())));

    // A paused destination is not served.
    siem::set_enabled(&t.db, acme, d.id, false).await.unwrap();
    let paused = siem::forward(&t.db, &d, &test_settings(), uuid::Uuid::now_v7()).await.unwrap();
    assert!(!paused.leased && paused.events == 0);
    siem::delete(&t.db, acme, d.id).await.unwrap();
    assert!(siem::list(&t.db, acme).await.unwrap().is_empty());
});

db_test!(a_destination_leased_by_another_forwarder_is_left_to_it_until_the_lease_runs_out, |t| {
    let acme = new_client(&t.db, "acme").await.id;
    let events = append_events(&t.db, acme, 5, None).await;
    let receiver = SyslogReceiver::start("127.0.0.1:0".parse().unwrap(), None).await;
    let d = siem::create(&t.db, acme, syslog(Kind::SyslogTcp, receiver.addr.port(), None)).await.unwrap();
    let lease = |until: &str| {
        format!(
            "UPDATE siem_destinations SET lease_owner = {}, lease_until = '{until}'",
            t.literal_uuid(uuid::Uuid::now_v7())
        )
    };
    // Times as each backend stores them (RFC 3339 text on SQLite).
    t.raw_execute(&lease("2999-01-01T00:00:00+00:00")).await.unwrap();
    let other = siem::forward(&t.db, &d, &test_settings(), uuid::Uuid::now_v7()).await.unwrap();
    assert_eq!(other, siem::Delivered { events: 0, leased: false });
    assert_eq!(receiver.connections.load(std::sync::atomic::Ordering::SeqCst), 0);

    t.raw_execute(&lease("2000-01-01T00:00:00+00:00")).await.unwrap();
    let ours = siem::forward(&t.db, &d, &test_settings(), uuid::Uuid::now_v7()).await.unwrap();
    assert_eq!(ours, siem::Delivered { events: 5, leased: true });
    assert_eq!(siem::get(&t.db, acme, d.id).await.unwrap().cursor, events.last().unwrap().id);
});
