//! Logging: `tracing` with a pretty or JSON format, where every line passes through the secret scrubber
//! before it reaches the output. Whatever a log call is handed - a header map, a URL with a code in it, an
//! error that quotes a token - the bytes written out have the secrets replaced.

use std::io::{self, Write};

use deployclaw::config::{LogConfig, LogFormat};
use deployclaw::scrub::scrub_text;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};

/// A writer that scrubs each formatted log record before passing it on.
pub struct ScrubbingWriter<W: Write> {
    inner: W,
    buffer: Vec<u8>,
}

impl<W: Write> Write for ScrubbingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The formatter may write a record in pieces; collect and scrub the whole record on flush/drop so a
        // secret split across two writes is still caught.
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buffer.is_empty() {
            let text = String::from_utf8_lossy(&self.buffer);
            let clean = scrub_text(&text);
            self.inner.write_all(clean.as_bytes())?;
            self.buffer.clear();
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for ScrubbingWriter<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Wraps a [`MakeWriter`] so that every record it writes is scrubbed. One writer is made per record.
#[derive(Clone)]
pub struct ScrubbingMakeWriter<M> {
    inner: M,
}

impl<M> ScrubbingMakeWriter<M> {
    pub fn new(inner: M) -> Self {
        Self { inner }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for ScrubbingMakeWriter<M> {
    type Writer = ScrubbingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubbingWriter { inner: self.inner.make_writer(), buffer: Vec::with_capacity(256) }
    }
}

/// The formatting layer for `format`, writing through `writer` with every record scrubbed.
pub fn layer<S, M>(format: LogFormat, writer: M) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    M: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    // No ANSI colours: escape codes between a key and its value would hide the pair from the scrubber.
    let base = tracing_subscriber::fmt::layer().with_ansi(false).with_writer(ScrubbingMakeWriter::new(writer));
    match format {
        LogFormat::Json => Box::new(base.json().with_current_span(true).with_span_list(false)),
        LogFormat::Pretty => Box::new(base.with_target(false)),
    }
}

/// The log filter: `RUST_LOG` when set and valid, else the configured directive.
pub fn filter(config: &LogConfig) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Builds the subscriber for `config`, writing through `writer` (scrubbed).
pub fn subscriber<M>(config: &LogConfig, writer: M) -> impl tracing::Subscriber + Send + Sync
where
    M: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::registry().with(filter(config)).with(layer(config.format, writer))
}

/// Installs the process-wide subscriber (stderr). Safe to call once; later calls are ignored.
pub fn init(config: &LogConfig) {
    let _ = tracing::subscriber::set_global_default(subscriber(config, io::stderr));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

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

    fn capture(format: LogFormat, emit: impl FnOnce()) -> String {
        let sink = Capture::default();
        let out = sink.clone();
        let config = LogConfig { format, filter: "trace".into() };
        let sub = subscriber(&config, move || sink.clone());
        tracing::subscriber::with_default(sub, emit);
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn secrets_never_reach_a_log_line_in_either_format() {
        let token = "dcp_live0123456789abcdef";
        let bearer = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        let whsec = format!("whsec_{}", "TestOnlyNotReal000111");
        for format in [LogFormat::Pretty, LogFormat::Json] {
            let text = capture(format, || {
                tracing::info!(authorization = %format!("Bearer {bearer}"), "incoming request");
                tracing::warn!(cookie = "id=SeSsIoNvAlUe; theme=dark", "cookie header seen");
                tracing::info!("api key used: {token}");
                tracing::error!(secret = %whsec, "webhook verification failed");
                tracing::info!(uri = "/login/verify?email=a@b.co&code=482913", "request");
            });
            for secret in [token, bearer, whsec.as_str(), "SeSsIoNvAlUe", "482913"] {
                assert!(!text.contains(secret), "{format:?} leaked {secret}: {text}");
            }
            assert!(text.contains("[redacted]"), "{format:?}: {text}");
            assert!(text.contains("incoming request") && text.contains("webhook verification failed"));
        }
    }
}
