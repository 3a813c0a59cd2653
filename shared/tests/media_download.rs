//! Downloading a customer's media with the Graph client, against local servers standing in for
//! Graph and Meta's media host: the size limit (declared, `Content-Length`, while reading), the
//! deadline, and the classification of failures.

use std::time::Duration;

use alphadome::whatsapp::{MediaError, WhatsAppClient};
use secrecy::SecretString;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PNID: &str = "106540352242922";
const TOKEN: &str = "EAAG-test-media-token";

fn token() -> SecretString {
    SecretString::from(TOKEN)
}

async fn graph_with_file(file: ResponseTemplate, declared: Option<u64>) -> MockServer {
    let server = MockServer::start().await;
    let mut info = json!({"messaging_product": "whatsapp", "url": format!("{}/file", server.uri()),
                          "mime_type": "audio/ogg", "id": "4490709327384033"});
    if let Some(n) = declared {
        info["file_size"] = n.into();
    }
    Mock::given(method("GET"))
        .and(path("/v25.0/4490709327384033"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(info))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/file"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(file)
        .mount(&server)
        .await;
    server
}

fn client(base: &str) -> WhatsAppClient {
    WhatsAppClient::new(format!("{base}/v25.0"), Duration::from_secs(2))
}

async fn download(base: &str, max: u64, deadline: Duration) -> Result<Vec<u8>, MediaError> {
    client(base)
        .download_media(PNID, &token(), "4490709327384033", max, deadline)
        .await
        .map(|m| m.bytes)
}

#[tokio::test]
async fn the_media_is_fetched_with_the_token_from_its_url_within_the_limit() {
    let server = graph_with_file(
        ResponseTemplate::new(200).set_body_raw(vec![7u8; 100], "audio/ogg"),
        Some(100),
    )
    .await;
    let bytes = download(&server.uri(), 100, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(bytes, vec![7u8; 100]);
}

#[tokio::test]
async fn a_file_over_the_limit_is_refused_by_its_declared_size_or_its_content_length() {
    let server = graph_with_file(
        ResponseTemplate::new(200).set_body_raw(vec![7u8; 100], "audio/ogg"),
        Some(100),
    )
    .await;
    assert_eq!(
        download(&server.uri(), 99, Duration::from_secs(2)).await,
        Err(MediaError::TooLarge { max_bytes: 99 })
    );
    let fetched = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/file")
        .count();
    assert_eq!(
        fetched, 0,
        "refused on the declared size, before the download"
    );

    // Graph declares nothing (or too little): the file's Content-Length refuses it.
    let server = graph_with_file(
        ResponseTemplate::new(200).set_body_raw(vec![7u8; 100], "audio/ogg"),
        None,
    )
    .await;
    assert_eq!(
        download(&server.uri(), 99, Duration::from_secs(2)).await,
        Err(MediaError::TooLarge { max_bytes: 99 })
    );
}

/// A server that answers Graph's `GET /{media-id}` and then streams the file in chunks without
/// a `Content-Length` (as a lying or compromised host could), `chunks` times 1 KB.
async fn chunked_server(chunks: usize) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let file_url = format!("{base}/file");
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let file_url = file_url.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                if !head.to_ascii_lowercase().contains(&format!(
                    "authorization: bearer {}",
                    TOKEN.to_ascii_lowercase()
                )) {
                    let _ = socket
                        .write_all(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                    return;
                }
                if head.starts_with("GET /file") {
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: audio/ogg\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n")
                        .await;
                    let chunk = vec![b'x'; 1024];
                    for _ in 0..chunks {
                        let mut part = format!("{:x}\r\n", chunk.len()).into_bytes();
                        part.extend_from_slice(&chunk);
                        part.extend_from_slice(b"\r\n");
                        if socket.write_all(&part).await.is_err() {
                            return;
                        }
                    }
                    let _ = socket.write_all(b"0\r\n\r\n").await;
                } else {
                    let body = json!({"url": file_url, "mime_type": "audio/ogg"}).to_string();
                    let _ = socket
                        .write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                                body.len()
                            )
                            .as_bytes(),
                        )
                        .await;
                }
            });
        }
    });
    base
}

#[tokio::test]
async fn a_file_streamed_without_a_length_is_cut_off_at_the_limit_while_reading() {
    let base = chunked_server(64).await;
    assert_eq!(
        download(&base, 10 * 1024, Duration::from_secs(5)).await,
        Err(MediaError::TooLarge {
            max_bytes: 10 * 1024
        })
    );
    // Under the limit, the same stream is read whole.
    let bytes = download(&base, 64 * 1024, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(bytes.len(), 64 * 1024);
}

#[tokio::test]
async fn a_slow_server_is_a_retryable_failure_by_the_deadline_and_a_404_is_final() {
    let server = graph_with_file(
        ResponseTemplate::new(200)
            .set_body_raw(vec![7u8; 10], "audio/ogg")
            .set_delay(Duration::from_secs(3)),
        Some(10),
    )
    .await;
    let started = std::time::Instant::now();
    let e = download(&server.uri(), 100, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    for (status, retryable) in [(404, false), (500, true), (429, true)] {
        let server = graph_with_file(ResponseTemplate::new(status), Some(10)).await;
        let e = download(&server.uri(), 100, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert_eq!(e.is_retryable(), retryable, "{status}: {e:?}");
    }
    let server = graph_with_file(ResponseTemplate::new(401), Some(10)).await;
    assert_eq!(
        download(&server.uri(), 100, Duration::from_secs(2)).await,
        Err(MediaError::TokenInvalid)
    );
}

#[tokio::test]
async fn a_media_id_that_could_change_the_path_is_refused_without_a_request() {
    let server = MockServer::start().await;
    for id in ["../1/messages", "1?fields=x", "", "1/2"] {
        let e = client(&server.uri())
            .download_media(PNID, &token(), id, 100, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(!e.is_retryable(), "{id}");
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}
