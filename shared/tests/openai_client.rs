//! The chat-completions client against a local server standing in for OpenAI: what it sends,
//! when it retries, and that it returns by its deadline.

use std::time::{Duration, Instant};

use alphadome::openai::{AiError, ChatMessage, ChatReply, ChatRequest, OpenAiClient, Role};
use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk-test-0123456789abcdef";
const DEADLINE: Duration = Duration::from_secs(5);

fn key() -> SecretString {
    SecretString::from(KEY)
}

fn client(server: &MockServer) -> OpenAiClient {
    OpenAiClient::new(format!("{}/v1", server.uri()), Duration::from_secs(2))
}

fn conversation() -> Vec<ChatMessage> {
    vec![
        ChatMessage {
            role: Role::System,
            content: "You are Mama Mboga's shop assistant.".into(),
        },
        ChatMessage {
            role: Role::User,
            content: "Do you deliver?".into(),
        },
        ChatMessage {
            role: Role::Assistant,
            content: "Yes, within Nairobi.".into(),
        },
        ChatMessage {
            role: Role::User,
            content: "How much?".into(),
        },
    ]
}

fn completion(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 57, "completion_tokens": 12, "total_tokens": 69}
    }))
}

async fn request_count(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .expect("request recording is on")
        .len()
}

#[tokio::test]
async fn complete_posts_model_messages_in_order_max_tokens_and_temperature_with_the_bearer_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are Mama Mboga's shop assistant."},
                {"role": "user", "content": "Do you deliver?"},
                {"role": "assistant", "content": "Yes, within Nairobi."},
                {"role": "user", "content": "How much?"}
            ],
            "max_tokens": 300,
            "temperature": 0.25
        })))
        .respond_with(completion("  Delivery is KES 200.\n"))
        .expect(1)
        .mount(&server)
        .await;
    let messages = conversation();
    let request = ChatRequest {
        model: "gpt-4o-mini",
        messages: &messages,
        max_tokens: 300,
        temperature: 0.25,
    };

    let reply = client(&server)
        .complete(&key(), &request, DEADLINE)
        .await
        .expect("the server answered");

    assert_eq!(reply.text, "Delivery is KES 200.");
    assert_eq!(reply.prompt_tokens, Some(57));
    assert_eq!(reply.completion_tokens, Some(12));
}

#[tokio::test]
async fn a_reply_without_usage_still_succeeds_with_no_token_counts() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "choices": [{"message": {"role": "assistant", "content": "Hi"}}]
        })))
        .mount(&server)
        .await;
    let messages = conversation();
    let request = ChatRequest {
        model: "local",
        messages: &messages,
        max_tokens: 50,
        temperature: 0.0,
    };

    let reply = client(&server)
        .complete(&key(), &request, DEADLINE)
        .await
        .expect("the server answered");

    assert_eq!(reply.text, "Hi");
    assert_eq!((reply.prompt_tokens, reply.completion_tokens), (None, None));
}

#[tokio::test]
async fn a_500_then_a_200_succeeds_after_one_retry() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(completion("Second time lucky"))
        .with_priority(2)
        .mount(&server)
        .await;
    let messages = conversation();
    let request = ChatRequest {
        model: "gpt-4o-mini",
        messages: &messages,
        max_tokens: 100,
        temperature: 0.2,
    };

    let reply = client(&server)
        .complete(&key(), &request, DEADLINE)
        .await
        .expect("the retry succeeded");

    assert_eq!(reply.text, "Second time lucky");
    assert_eq!(request_count(&server).await, 2);
}

#[tokio::test]
async fn a_429_then_a_200_succeeds_after_one_retry() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({
            "error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(completion("ok"))
        .with_priority(2)
        .mount(&server)
        .await;
    let messages = conversation();
    let request = ChatRequest {
        model: "gpt-4o-mini",
        messages: &messages,
        max_tokens: 100,
        temperature: 0.2,
    };

    client(&server)
        .complete(&key(), &request, DEADLINE)
        .await
        .expect("the retry succeeded");

    assert_eq!(request_count(&server).await, 2);
}

#[tokio::test]
async fn a_401_is_rejected_without_retry() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": {"message": format!("Incorrect API key provided: {KEY}"), "type": "invalid_request_error", "code": "invalid_api_key"}
        })))
        .mount(&server)
        .await;
    let messages = conversation();
    let request = ChatRequest {
        model: "gpt-4o-mini",
        messages: &messages,
        max_tokens: 100,
        temperature: 0.2,
    };

    let error = client(&server)
        .complete(&key(), &request, DEADLINE)
        .await
        .expect_err("the key was refused");

    assert_eq!(error, AiError::Rejected { status: 401 });
    assert_eq!(request_count(&server).await, 1);
    for shown in [error.to_string(), format!("{error:?}")] {
        assert!(!shown.contains(KEY), "{shown}");
        assert!(!shown.contains("Incorrect API key"), "{shown}");
    }
}

#[tokio::test]
async fn a_429_for_exhausted_quota_is_rejected_without_retry() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({
            "error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}
        })))
        .mount(&server)
        .await;
    let messages = conversation();
    let request = ChatRequest {
        model: "gpt-4o-mini",
        messages: &messages,
        max_tokens: 100,
        temperature: 0.2,
    };

    let error = client(&server)
        .complete(&key(), &request, DEADLINE)
        .await
        .expect_err("no quota left");

    assert_eq!(error, AiError::Rejected { status: 429 });
    assert_eq!(request_count(&server).await, 1);
}

#[tokio::test]
async fn a_persistent_500_is_a_server_error_after_exactly_three_requests() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("overloaded: How much?"))
        .mount(&server)
        .await;
    let messages = conversation();
    let request = ChatRequest {
        model: "gpt-4o-mini",
        messages: &messages,
        max_tokens: 100,
        temperature: 0.2,
    };

    let error = client(&server)
        .complete(&key(), &request, DEADLINE)
        .await
        .expect_err("the server kept failing");

    assert_eq!(error, AiError::Server { status: 503 });
    assert_eq!(request_count(&server).await, 3);
    assert!(!error.to_string().contains("How much?"));
}

#[tokio::test]
async fn a_persistent_429_is_rate_limited_after_exactly_three_requests() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429))
        .mount(&server)
        .await;
    let messages = conversation();
    let request = ChatRequest {
        model: "gpt-4o-mini",
        messages: &messages,
        max_tokens: 100,
        temperature: 0.2,
    };

    let error = client(&server)
        .complete(&key(), &request, DEADLINE)
        .await
        .expect_err("still throttled");

    assert_eq!(error, AiError::RateLimited);
    assert_eq!(request_count(&server).await, 3);
}

#[tokio::test]
async fn a_slow_server_ends_in_timeout_by_the_deadline() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(completion("too late").set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    let messages = conversation();
    let request = ChatRequest {
        model: "gpt-4o-mini",
        messages: &messages,
        max_tokens: 100,
        temperature: 0.2,
    };
    // The per-attempt timeout is longer than the deadline: the deadline alone must stop it.
    let client = OpenAiClient::new(format!("{}/v1", server.uri()), Duration::from_secs(10));

    let started = Instant::now();
    let error = client
        .complete(&key(), &request, Duration::from_millis(300))
        .await
        .expect_err("the server was too slow");

    assert_eq!(error, AiError::Timeout);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300),
        "returned early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(1000),
        "overran the deadline: {elapsed:?}"
    );
}

#[tokio::test]
async fn per_attempt_timeouts_are_retried_and_end_in_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(completion("too late").set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    let messages = conversation();
    let request = ChatRequest {
        model: "gpt-4o-mini",
        messages: &messages,
        max_tokens: 100,
        temperature: 0.2,
    };
    let client = OpenAiClient::new(format!("{}/v1", server.uri()), Duration::from_millis(100));

    let error = client
        .complete(&key(), &request, DEADLINE)
        .await
        .expect_err("every attempt timed out");

    assert_eq!(error, AiError::Timeout);
    assert_eq!(request_count(&server).await, 3);
}

#[tokio::test]
async fn a_200_without_choices_or_content_is_malformed_and_not_retried() {
    for body in [
        json!({"choices": []}),
        json!({"choices": [{"message": {"role": "assistant", "content": null}}]}),
        json!({"choices": [{"message": {"role": "assistant", "content": "   "}}]}),
        json!({"unexpected": true}),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body.clone()))
            .mount(&server)
            .await;
        let messages = conversation();
        let request = ChatRequest {
            model: "gpt-4o-mini",
            messages: &messages,
            max_tokens: 100,
            temperature: 0.2,
        };

        let error = client(&server)
            .complete(&key(), &request, DEADLINE)
            .await
            .expect_err("no usable reply");

        assert_eq!(error, AiError::Malformed, "for {body}");
        assert_eq!(request_count(&server).await, 1, "for {body}");
    }
}

#[tokio::test]
async fn an_unreachable_server_is_a_transport_error() {
    let client = OpenAiClient::new(
        format!("http://{}/v1", closed_port_address()),
        Duration::from_secs(1),
    );
    let messages = conversation();
    let request = ChatRequest {
        model: "gpt-4o-mini",
        messages: &messages,
        max_tokens: 100,
        temperature: 0.2,
    };

    let error = client
        .complete(&key(), &request, DEADLINE)
        .await
        .expect_err("nothing listens there");

    assert_eq!(error, AiError::Transport);
}

#[test]
fn debug_output_of_messages_and_replies_hides_their_text() {
    let shown = format!("{:?}", conversation());
    assert!(!shown.contains("Do you deliver"), "{shown}");
    let reply = ChatReply {
        text: "Delivery is KES 200.".into(),
        prompt_tokens: Some(1),
        completion_tokens: None,
        cached_tokens: None,
    };
    let shown = format!("{reply:?}");
    assert!(!shown.contains("KES"), "{shown}");
}

/// An address where nothing listens: a port the OS just handed out and that was closed again.
fn closed_port_address() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free local port");
    listener
        .local_addr()
        .expect("a bound listener has an address")
}
