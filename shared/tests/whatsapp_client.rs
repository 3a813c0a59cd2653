//! The Graph API client against a local server standing in for graph.facebook.com: what it
//! sends, and how it reads each kind of failure.

use std::time::{Duration, Instant};

use alphadome::whatsapp::{Recipient, SendError, WhatsAppClient};
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PHONE_NUMBER_ID: &str = "106540352242922";
const TOKEN: &str = "EAAG-test-token-9f8e7d";
const USER: &str = "254712345678";
const GRAPH_MESSAGE: &str = "(#131047) Re-engagement message to 254712345678";

fn token() -> SecretString {
    SecretString::from(TOKEN)
}

fn client(server: &MockServer) -> WhatsAppClient {
    WhatsAppClient::new(format!("{}/v25.0", server.uri()), Duration::from_secs(2))
}

fn accepted(wamid: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": USER, "wa_id": USER}],
        "messages": [{"id": wamid}]
    }))
}

fn graph_error(status: u16, code: i64) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": {
            "message": GRAPH_MESSAGE,
            "type": "OAuthException",
            "code": code,
            "error_subcode": 2494010,
            "error_data": {"messaging_product": "whatsapp", "details": format!("Recipient {USER}")},
            "fbtrace_id": "AbCdEf123"
        }
    }))
}

async fn send_with_response(response: ResponseTemplate) -> SendError {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(response)
        .mount(&server)
        .await;
    client(&server)
        .send_text(
            PHONE_NUMBER_ID,
            &token(),
            &Recipient::Phone(USER.into()),
            "hi",
            None,
        )
        .await
        .expect_err("the server answered with an error")
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .expect("request recording is on")
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("the client sends JSON"))
        .collect()
}

#[tokio::test]
async fn send_text_posts_the_documented_json_with_the_bearer_token_to_the_messages_path() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v25.0/{PHONE_NUMBER_ID}/messages")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": USER,
            "type": "text",
            "text": {"preview_url": false, "body": "Karibu! We open at 8."}
        })))
        .respond_with(accepted("wamid.OUT1"))
        .expect(1)
        .mount(&server)
        .await;

    let ids = client(&server)
        .send_text(
            PHONE_NUMBER_ID,
            &token(),
            &Recipient::Phone(USER.into()),
            "Karibu! We open at 8.",
            None,
        )
        .await
        .expect("the server accepted the message");

    assert_eq!(ids, vec!["wamid.OUT1".to_string()]);
}

#[tokio::test]
async fn send_text_quotes_the_message_it_replies_to() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_json(json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": USER,
            "type": "text",
            "text": {"preview_url": false, "body": "Yes"},
            "context": {"message_id": "wamid.IN42"}
        })))
        .respond_with(accepted("wamid.OUT2"))
        .expect(1)
        .mount(&server)
        .await;

    let ids = client(&server)
        .send_text(
            PHONE_NUMBER_ID,
            &token(),
            &Recipient::Phone(USER.into()),
            "Yes",
            Some("wamid.IN42"),
        )
        .await
        .expect("the server accepted the message");

    assert_eq!(ids, vec!["wamid.OUT2".to_string()]);
}

#[tokio::test]
async fn send_text_to_a_business_scoped_user_id_uses_the_recipient_field_instead_of_to() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_json(json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "recipient": "US.13491208655302741918",
            "type": "text",
            "text": {"preview_url": false, "body": "Hello"}
        })))
        .respond_with(accepted("wamid.OUT3"))
        .expect(1)
        .mount(&server)
        .await;

    client(&server)
        .send_text(
            PHONE_NUMBER_ID,
            &token(),
            &Recipient::UserId("US.13491208655302741918".into()),
            "Hello",
            None,
        )
        .await
        .expect("the server accepted the message");
}

#[tokio::test]
async fn a_5000_character_text_is_sent_as_two_messages_and_only_the_first_quotes() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(accepted("wamid.PART"))
        .expect(2)
        .mount(&server)
        .await;
    let first_paragraph = "a".repeat(3000);
    let second_paragraph = "b".repeat(1999);
    let text = format!("{first_paragraph}\n{second_paragraph}");
    assert_eq!(text.chars().count(), 5000);

    let ids = client(&server)
        .send_text(
            PHONE_NUMBER_ID,
            &token(),
            &Recipient::Phone(USER.into()),
            &text,
            Some("wamid.IN7"),
        )
        .await
        .expect("the server accepted both parts");

    assert_eq!(ids.len(), 2);
    let sent = bodies(&server).await;
    assert_eq!(sent[0]["text"]["body"], first_paragraph.as_str());
    assert_eq!(sent[0]["context"]["message_id"], "wamid.IN7");
    assert_eq!(sent[1]["text"]["body"], second_paragraph.as_str());
    assert!(
        sent[1].get("context").is_none(),
        "the second part must not quote"
    );
}

#[tokio::test]
async fn a_long_text_without_whitespace_is_cut_at_4096_characters_on_a_char_boundary() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(accepted("wamid.PART"))
        .expect(2)
        .mount(&server)
        .await;
    let text = "ü".repeat(5000);

    client(&server)
        .send_text(
            PHONE_NUMBER_ID,
            &token(),
            &Recipient::Phone(USER.into()),
            &text,
            None,
        )
        .await
        .expect("the server accepted both parts");

    let sent = bodies(&server).await;
    let lengths: Vec<usize> = sent
        .iter()
        .map(|b| b["text"]["body"].as_str().unwrap().chars().count())
        .collect();
    assert_eq!(lengths, vec![4096, 904]);
}

#[tokio::test]
async fn http_429_is_retryable() {
    let error = send_with_response(ResponseTemplate::new(429)).await;
    assert!(error.is_retryable(), "{error:?}");
    assert_eq!(
        error,
        SendError::Retryable {
            code: None,
            http_status: Some(429)
        }
    );
}

#[tokio::test]
async fn throughput_limit_130429_in_a_400_body_is_retryable() {
    let error = send_with_response(graph_error(400, 130429)).await;
    assert!(error.is_retryable(), "{error:?}");
    assert_eq!(error.code(), Some(130429));
}

#[tokio::test]
async fn pair_rate_limit_131056_in_a_400_body_is_retryable() {
    let error = send_with_response(graph_error(400, 131056)).await;
    assert!(error.is_retryable(), "{error:?}");
    assert_eq!(error.code(), Some(131056));
}

#[tokio::test]
async fn http_500_is_retryable() {
    let error =
        send_with_response(ResponseTemplate::new(500).set_body_string("<html>oops</html>")).await;
    assert_eq!(
        error,
        SendError::Retryable {
            code: None,
            http_status: Some(500)
        }
    );
}

#[tokio::test]
async fn a_closed_24_hour_window_131047_is_rejected_and_not_retryable() {
    let error = send_with_response(graph_error(400, 131047)).await;
    assert_eq!(
        error,
        SendError::Rejected {
            code: Some(131047),
            http_status: 400
        }
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn an_expired_token_190_is_token_invalid() {
    let error = send_with_response(graph_error(401, 190)).await;
    assert_eq!(error, SendError::TokenInvalid { code: 190 });
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn an_undeliverable_message_131026_is_rejected() {
    let error = send_with_response(graph_error(400, 131026)).await;
    assert_eq!(
        error,
        SendError::Rejected {
            code: Some(131026),
            http_status: 400
        }
    );
}

#[tokio::test]
async fn an_invalid_parameter_100_is_rejected() {
    let error = send_with_response(graph_error(400, 100)).await;
    assert_eq!(
        error,
        SendError::Rejected {
            code: Some(100),
            http_status: 400
        }
    );
}

#[tokio::test]
async fn a_server_that_never_answers_is_retryable_after_the_client_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(accepted("wamid.LATE").set_delay(Duration::from_secs(10)))
        .mount(&server)
        .await;
    let client = WhatsAppClient::new(server.uri(), Duration::from_millis(200));

    let started = Instant::now();
    let error = client
        .send_text(
            PHONE_NUMBER_ID,
            &token(),
            &Recipient::Phone(USER.into()),
            "hi",
            None,
        )
        .await
        .expect_err("the server never answered");

    assert_eq!(
        error,
        SendError::Retryable {
            code: None,
            http_status: None
        }
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_unreachable_server_is_retryable() {
    let client = WhatsAppClient::new(
        format!("http://{}", closed_port_address()),
        Duration::from_secs(2),
    );
    let error = client
        .send_text(
            PHONE_NUMBER_ID,
            &token(),
            &Recipient::Phone(USER.into()),
            "hi",
            None,
        )
        .await
        .expect_err("nothing listens there");
    assert_eq!(
        error,
        SendError::Retryable {
            code: None,
            http_status: None
        }
    );
}

#[tokio::test]
async fn error_text_never_contains_the_token_the_number_or_graphs_message() {
    for response in [
        graph_error(400, 131047),
        graph_error(401, 190),
        graph_error(400, 130429),
        graph_error(500, 131000),
        ResponseTemplate::new(502).set_body_string(format!("upstream said {GRAPH_MESSAGE}")),
    ] {
        let error = send_with_response(response).await;
        for shown in [error.to_string(), format!("{error:?}")] {
            assert!(!shown.contains(TOKEN), "{shown}");
            assert!(!shown.contains(USER), "{shown}");
            assert!(!shown.contains("Re-engagement"), "{shown}");
            assert!(!shown.contains("AbCdEf123"), "{shown}");
        }
    }
}

#[tokio::test]
async fn mark_read_posts_the_read_status_for_the_inbound_message() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v25.0/{PHONE_NUMBER_ID}/messages")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(json!({
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": "wamid.IN42"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .expect(1)
        .mount(&server)
        .await;

    client(&server)
        .mark_read(PHONE_NUMBER_ID, &token(), "wamid.IN42")
        .await
        .expect("the server accepted the receipt");
}

#[tokio::test]
async fn mark_read_reports_an_expired_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(graph_error(401, 190))
        .mount(&server)
        .await;

    let error = client(&server)
        .mark_read(PHONE_NUMBER_ID, &token(), "wamid.IN42")
        .await
        .expect_err("the token was refused");

    assert_eq!(error, SendError::TokenInvalid { code: 190 });
}

#[tokio::test]
async fn a_base_url_with_a_trailing_slash_still_hits_the_messages_path() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v25.0/{PHONE_NUMBER_ID}/messages")))
        .respond_with(accepted("wamid.OUT9"))
        .expect(1)
        .mount(&server)
        .await;

    WhatsAppClient::new(format!("{}/v25.0/", server.uri()), Duration::from_secs(2))
        .send_text(
            PHONE_NUMBER_ID,
            &token(),
            &Recipient::Phone(USER.into()),
            "hi",
            None,
        )
        .await
        .expect("the server accepted the message");
}

/// An address where nothing listens: a port the OS just handed out and that was closed again.
fn closed_port_address() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free local port");
    listener
        .local_addr()
        .expect("a bound listener has an address")
}

#[tokio::test]
async fn a_template_is_sent_with_its_name_language_and_body_parameters() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v25.0/{PHONE_NUMBER_ID}/messages")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": USER,
            "type": "template",
            "template": {
                "name": "handover_notice",
                "language": {"code": "en_US"},
                "components": [{"type": "body", "parameters": [
                    {"type": "text", "text": "Kassangas"},
                    {"type": "text", "text": "+254711000111"},
                    {"type": "text", "text": "bei ya guitar?"}
                ]}]
            }
        })))
        .respond_with(accepted("wamid.TPL"))
        .expect(1)
        .mount(&server)
        .await;
    let id = client(&server)
        .send_template(
            PHONE_NUMBER_ID,
            &token(),
            &Recipient::Phone(USER.into()),
            "handover_notice",
            "en_US",
            &[
                "Kassangas".to_owned(),
                "+254711000111".to_owned(),
                "bei ya guitar?".to_owned(),
            ],
            None,
        )
        .await
        .unwrap();
    assert_eq!(id, "wamid.TPL");
}

#[tokio::test]
async fn a_refused_template_is_classified_like_any_send() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(graph_error(400, 132001))
        .mount(&server)
        .await;
    let e = client(&server)
        .send_template(
            PHONE_NUMBER_ID,
            &token(),
            &Recipient::UserId("KE.1".into()),
            "missing_template",
            "en",
            &[],
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(
        e,
        SendError::Rejected {
            code: Some(132001),
            http_status: 400
        }
    );
    let sent: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(sent["recipient"], "KE.1");
    assert!(sent.get("to").is_none() && sent["template"].get("components").is_none());
}
