use std::io::{self, Write};
use std::sync::{Arc, Mutex, OnceLock};

use deployclaw::config::LogFormat;
use deployclaw_app::server::telemetry;
use tracing_subscriber::layer::SubscriberExt;

use crate::support::TestApp;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn lines_with(&self, needle: &str) -> Vec<String> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines().filter(|l| l.contains(needle)).map(str::to_string).collect()
    }
}

/// This test binary's global subscriber: the production layers for both formats, each into its own buffer.
/// Global, not per-test, because tracing caches per-callsite interest across threads.
fn captured() -> &'static (Capture, Capture) {
    static SINKS: OnceLock<(Capture, Capture)> = OnceLock::new();
    SINKS.get_or_init(|| {
        let (pretty, json) = (Capture::default(), Capture::default());
        let (p, j) = (pretty.clone(), json.clone());
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("info"))
            .with(telemetry::layer(LogFormat::Pretty, move || p.clone()))
            .with(telemetry::layer(LogFormat::Json, move || j.clone()));
        tracing::subscriber::set_global_default(subscriber).expect("only this test sets a global subscriber");
        (pretty, json)
    })
}

/// The request log records the URI and headers pass near it; a sign-in link's code, tokens, bearer
/// credentials and cookies must not survive into either log format.
#[tokio::test]
async fn request_logs_never_contain_codes_tokens_or_cookies() {
    let (pretty, json) = captured();
    let request_id = format!("log-test-{}", uuid::Uuid::now_v7().simple());
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(app.url("/healthz?email=a%40b.example&code=482913&token=dcp_abcdefghij0123"))
        .header("x-request-id", &request_id)
        .header("authorization", "Bearer dca_zyxwvutsrq9876")
        .header("cookie", "id=SeSsIoNvAlUe")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    app.stop().await;

    for (format, sink) in [("pretty", pretty), ("json", json)] {
        let lines = sink.lines_with(&request_id);
        assert!(!lines.is_empty(), "{format}: the request was logged with its id");
        let text = lines.join("\n");
        assert!(text.contains("/healthz"), "{format}: {text}");
        assert!(text.contains("[redacted]"), "{format}: {text}");
        for secret in ["482913", "dcp_abcdefghij0123", "zyxwvutsrq9876", "SeSsIoNvAlUe"] {
            assert!(!text.contains(secret), "{format} leaked {secret}: {text}");
        }
    }
}
