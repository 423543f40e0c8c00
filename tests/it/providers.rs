//! Local stand-ins for the model providers, speaking their wire formats on 127.0.0.1 (the LLM gateway's base
//! URLs point here in tests and benchmarks; the gateway's code path is the production one).
//!
//! - `POST /v1/chat/completions` (OpenAI): needs `Authorization: Bearer <key>`; answers a chat completion
//!   with `usage`, or with `stream: true` a server-sent-events stream of chunks, ending with a usage chunk only
//!   when `stream_options.include_usage` is true, then `data: [DONE]` - as OpenAI does.
//! - `POST /v1/messages` (Anthropic): needs `x-api-key: <key>` and `anthropic-version`; answers a message with
//!   `usage`, or with `stream: true` the `message_start` ... `message_stop` event sequence.
//!
//! Every request is recorded (headers and JSON body) so tests can check what reached "the provider".
//! Shared with `benches/gateway.rs` through `#[path]`.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// What a stand-in answers: the usage it reports per call.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Anthropic only: cache reads reported next to the input tokens.
    pub cache_read_tokens: u64,
}

impl Default for Reply {
    fn default() -> Self {
        Self { input_tokens: 1_000, output_tokens: 500, cache_read_tokens: 0 }
    }
}

/// One request as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
pub struct StandIn {
    pub addr: SocketAddr,
    key: String,
    reply: Reply,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl StandIn {
    /// Starts a stand-in accepting `key` as the provider key (for either format). Runs until the test's
    /// runtime ends.
    pub async fn start(key: &str, reply: Reply) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let s = Self { addr: listener.local_addr().unwrap(), key: key.to_string(), reply, seen: Arc::default() };
        let server = s.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                stream.set_nodelay(true).ok();
                let server = server.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let server = server.clone();
                        async move { Ok::<_, Infallible>(server.answer(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        s
    }

    pub fn base_url(&self) -> url::Url {
        url::Url::parse(&format!("http://{}", self.addr)).unwrap()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).to_string()))
            .collect();
        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let seen = Seen { path: path.clone(), headers, body: body.clone() };
        self.seen.lock().unwrap().push(seen.clone());
        match path.as_str() {
            "/v1/chat/completions" => self.openai(&seen),
            "/v1/messages" => self.anthropic(&seen),
            _ => json_response(
                StatusCode::NOT_FOUND,
                json!({"error": {"message": "unknown path", "type": "invalid_request_error"}}),
            ),
        }
    }

    fn openai(&self, seen: &Seen) -> Response<Full<Bytes>> {
        if seen.header("authorization") != Some(format!("Bearer {}", self.key).as_str()) {
            let e = json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}});
            return json_response(StatusCode::UNAUTHORIZED, e);
        }
        let model = seen.body["model"].as_str().unwrap_or_default().to_string();
        let usage = json!({
            "prompt_tokens": self.reply.input_tokens,
            "completion_tokens": self.reply.output_tokens,
            "total_tokens": self.reply.input_tokens + self.reply.output_tokens,
        });
        if seen.body["stream"] != json!(true) {
            return json_response(
                StatusCode::OK,
                json!({
                    "id": "chatcmpl-standin",
                    "object": "chat.completion",
                    "created": 1_790_000_000u64,
                    "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the stand-in."}, "finish_reason": "stop"}],
                    "usage": usage,
                }),
            );
        }
        let chunk = |delta: Value, finish: Value| {
            json!({"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": 1_790_000_000u64, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "usage": null})
        };
        let mut events = vec![
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"content": "Hello "}), Value::Null),
            chunk(json!({"content": "from the stand-in."}), json!("stop")),
        ];
        if seen.body["stream_options"]["include_usage"] == json!(true) {
            events
                .push(json!({"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": 1_790_000_000u64,
                               "model": model, "choices": [], "usage": usage}));
        }
        let mut text = String::new();
        for e in events {
            text.push_str(&format!("data: {e}\n\n"));
        }
        text.push_str("data: [DONE]\n\n");
        event_stream(text)
    }

    fn anthropic(&self, seen: &Seen) -> Response<Full<Bytes>> {
        if seen.header("x-api-key") != Some(self.key.as_str()) {
            let e = json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}});
            return json_response(StatusCode::UNAUTHORIZED, e);
        }
        if seen.header("anthropic-version").is_none() {
            let e = json!({"type": "error", "error": {"type": "invalid_request_error", "message": "anthropic-version: header is required"}});
            return json_response(StatusCode::BAD_REQUEST, e);
        }
        let model = seen.body["model"].as_str().unwrap_or_default().to_string();
        let r = self.reply;
        if seen.body["stream"] != json!(true) {
            return json_response(
                StatusCode::OK,
                json!({
                    "id": "msg_standin", "type": "message", "role": "assistant", "model": model,
                    "content": [{"type": "text", "text": "Hello from the stand-in."}],
                    "stop_reason": "end_turn", "stop_sequence": null,
                    "usage": {"input_tokens": r.input_tokens, "cache_read_input_tokens": r.cache_read_tokens,
                              "cache_creation_input_tokens": 0, "output_tokens": r.output_tokens},
                }),
            );
        }
        let events = [
            (
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_standin", "type": "message", "role": "assistant",
                "model": model, "content": [], "stop_reason": null,
                "usage": {"input_tokens": r.input_tokens, "cache_read_input_tokens": r.cache_read_tokens, "output_tokens": 1}}}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            ("ping", json!({"type": "ping"})),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello "}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "from the stand-in."}}),
            ),
            ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
            (
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"output_tokens": r.output_tokens}}),
            ),
            ("message_stop", json!({"type": "message_stop"})),
        ];
        let mut text = String::new();
        for (name, data) in events {
            text.push_str(&format!("event: {name}\ndata: {data}\n\n"));
        }
        event_stream(text)
    }
}

fn json_response(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-request-id", "req_standin")
        .header("set-cookie", "standin=1")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn event_stream(text: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream; charset=utf-8")
        .header("cache-control", "no-cache")
        .body(Full::new(Bytes::from(text)))
        .unwrap()
}
