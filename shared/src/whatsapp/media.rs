//! Downloading a customer's media (a voice note, a picture) through the Graph API with the
//! tenant's token: `GET {base}/{media-id}` answers a short-lived URL, and a second `GET` of
//! that URL, with the same token, answers the bytes.
//!
//! The token is a tenant's key to its WhatsApp account, so it goes only to Meta's hosts
//! (`graph.facebook.com`, `lookaside.fbsbx.com` and other `*.facebook.com`, `*.fbsbx.com`,
//! `*.whatsapp.net` hosts, over HTTPS) or to the configured `WHATSAPP_API_BASE_URL` origin
//! (where tests run their stand-in). A URL elsewhere is refused before any request, and a
//! redirect is followed only to those hosts (at most 3): never does the token, nor the
//! request, leave for another host. The size is capped by the declared `file_size`, by
//! `Content-Length` and while reading, so a lying server cannot make us hold more.

use std::time::Duration;

use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The largest voice note we fetch (WhatsApp's own limit for audio).
pub const MAX_AUDIO_BYTES: u64 = 16 * 1024 * 1024;
/// The largest picture we fetch (WhatsApp's own limit for images).
pub const MAX_IMAGE_BYTES: u64 = 5 * 1024 * 1024;

/// Hosts the token may go to, by suffix (and the bare domains themselves), HTTPS only.
const META_DOMAINS: &[&str] = &["facebook.com", "fbsbx.com", "whatsapp.net"];

/// A downloaded media file, held in memory only as long as it is needed.
pub struct MediaFile {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// The MIME type Meta declared (e.g. `audio/ogg; codecs=opus`, `image/jpeg`).
    pub mime_type: String,
}

// Media is a customer's voice or picture: `Debug` shows its size and type only.
impl std::fmt::Debug for MediaFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaFile")
            .field("bytes", &self.bytes.len())
            .field("mime_type", &self.mime_type)
            .finish()
    }
}

/// Why a download failed. No URL, token or content in the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// Worth trying again later: 429, 5xx, a temporary Graph code, a timeout or no answer.
    #[error("media download failed, retryable (http status {http_status:?})")]
    Retryable { http_status: Option<u16> },
    /// The token is invalid or expired (401, Graph code 190).
    #[error("media download refused: the WhatsApp token was rejected")]
    TokenInvalid,
    /// Larger than the limit for its kind.
    #[error("media larger than {max_bytes} bytes; not downloaded")]
    TooLarge { max_bytes: u64 },
    /// The media URL (or a redirect) points outside Meta's hosts: nothing is sent there.
    #[error("media URL outside Meta's hosts; refused")]
    ForeignHost,
    /// Refused for good (an unknown or expired media id, a malformed answer, a redirect not
    /// followed): trying again will not help.
    #[error("media download refused (http status {http_status})")]
    Rejected { http_status: u16 },
}

impl MediaError {
    /// Whether the same download may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, MediaError::Retryable { .. })
    }
}

/// The origin (scheme, host, port) of the configured Graph base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Origin(String, String, Option<u16>);

impl Origin {
    pub(super) fn of(base_url: &str) -> Option<Self> {
        let url = Url::parse(base_url).ok()?;
        Some(Self(
            url.scheme().to_owned(),
            url.host_str()?.to_ascii_lowercase(),
            url.port_or_known_default(),
        ))
    }

    fn is_of(&self, url: &Url) -> bool {
        url.scheme() == self.0
            && url.host_str().map(str::to_ascii_lowercase).as_deref() == Some(self.1.as_str())
            && url.port_or_known_default() == self.2
    }
}

/// Whether the tenant's token may be sent to `url`: an HTTPS URL on one of Meta's domains, or
/// the configured Graph origin.
pub(super) fn may_carry_token(url: &Url, configured: Option<&Origin>) -> bool {
    if configured.is_some_and(|o| o.is_of(url)) {
        return true;
    }
    if url.scheme() != "https" || !url.username().is_empty() || url.password().is_some() {
        return false;
    }
    let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
        return false;
    };
    let host = host.trim_end_matches('.');
    META_DOMAINS.iter().any(|d| {
        host == *d
            || host
                .strip_suffix(d)
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1)
    })
}

/// The HTTP client for media: the same timeout as sends, and redirects only to hosts that
/// may carry the token.
pub(super) fn media_http(timeout: Duration, configured: Option<Origin>) -> reqwest::Client {
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 3 {
            attempt.stop()
        } else if may_carry_token(attempt.url(), configured.as_ref()) {
            attempt.follow()
        } else {
            tracing::warn!("media download redirected outside Meta's hosts; not followed");
            attempt.stop()
        }
    });
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(policy)
        .build()
        .expect("a reqwest client with a timeout and a redirect policy always builds")
}

/// `GET /{media-id}`'s answer.
#[derive(Deserialize)]
struct MediaInfo {
    url: String,
    #[serde(default)]
    mime_type: Option<String>,
    /// Meta sends it as a number or a string.
    #[serde(default)]
    file_size: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct GraphErrorBody {
    error: GraphErrorCode,
}

#[derive(Deserialize)]
struct GraphErrorCode {
    code: Option<i64>,
}

impl super::WhatsAppClient {
    /// Downloads the media `media_id` a customer sent to the business number
    /// `phone_number_id`, with that business's token, refusing anything over `max_bytes`; the
    /// whole download (both requests) ends by `deadline`.
    ///
    /// # Errors
    /// A [`MediaError`]: retryable (429/5xx, timeouts, no answer) or not.
    pub async fn download_media(
        &self,
        phone_number_id: &str,
        token: &SecretString,
        media_id: &str,
        max_bytes: u64,
        deadline: Duration,
    ) -> Result<MediaFile, MediaError> {
        // A media id is Meta's opaque number: anything that could change the path or the
        // query is refused before a request is made.
        if media_id.is_empty()
            || !media_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            tracing::warn!("media id is not an id; not downloaded");
            return Err(MediaError::Rejected { http_status: 0 });
        }
        let download = async {
            let mut info_url = Url::parse(&format!("{}/{}", self.base_url, media_id))
                .map_err(|_| MediaError::Rejected { http_status: 0 })?;
            info_url
                .query_pairs_mut()
                .append_pair("phone_number_id", phone_number_id);
            let info: MediaInfo = self
                .media_get(&info_url, token)
                .await?
                .json()
                .await
                .map_err(|e| {
                    if e.is_timeout() {
                        MediaError::Retryable { http_status: None }
                    } else {
                        MediaError::Rejected { http_status: 200 }
                    }
                })?;
            let declared = info.file_size.as_ref().and_then(|v| match v {
                serde_json::Value::Number(n) => n.as_u64(),
                serde_json::Value::String(s) => s.parse().ok(),
                _ => None,
            });
            if declared.is_some_and(|n| n > max_bytes) {
                return Err(MediaError::TooLarge { max_bytes });
            }
            let url =
                Url::parse(&info.url).map_err(|_| MediaError::Rejected { http_status: 200 })?;
            let mut response = self.media_get(&url, token).await?;
            if response.content_length().is_some_and(|n| n > max_bytes) {
                return Err(MediaError::TooLarge { max_bytes });
            }
            let mime_type = info
                .mime_type
                .or_else(|| {
                    response
                        .headers()
                        .get(reqwest::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| "application/octet-stream".to_owned());
            let mut bytes = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| {
                tracing::warn!(timeout = e.is_timeout(), "media download cut off");
                MediaError::Retryable { http_status: None }
            })? {
                if bytes.len() as u64 + chunk.len() as u64 > max_bytes {
                    return Err(MediaError::TooLarge { max_bytes });
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(MediaFile { bytes, mime_type })
        };
        match tokio::time::timeout(deadline, download).await {
            Ok(result) => {
                if let Err(e) = &result {
                    tracing::warn!(phone_number_id, error = %e, "media download failed");
                }
                result
            }
            Err(_) => {
                tracing::warn!(phone_number_id, "media download passed its deadline");
                Err(MediaError::Retryable { http_status: None })
            }
        }
    }

    /// One authenticated `GET` of a URL that may carry the token; a non-2xx answer classified.
    async fn media_get(
        &self,
        url: &Url,
        token: &SecretString,
    ) -> Result<reqwest::Response, MediaError> {
        if !may_carry_token(url, self.origin.as_ref()) {
            tracing::warn!("media URL outside Meta's hosts; the token is not sent");
            return Err(MediaError::ForeignHost);
        }
        let response = self
            .media_http
            .get(url.clone())
            .bearer_auth(token.expose_secret())
            .send()
            .await
            .map_err(|e| {
                // reqwest's Display names the URL, which carries Meta's signed parameters.
                tracing::warn!(
                    timeout = e.is_timeout(),
                    connect = e.is_connect(),
                    "media request failed before an answer"
                );
                if e.is_builder() {
                    MediaError::Rejected { http_status: 0 }
                } else {
                    MediaError::Retryable { http_status: None }
                }
            })?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(response);
        }
        if response.status().is_redirection() {
            // The policy stopped at a host the token may not go to.
            return Err(MediaError::ForeignHost);
        }
        let bytes = response.bytes().await.unwrap_or_default();
        let code = serde_json::from_slice::<GraphErrorBody>(&bytes)
            .ok()
            .and_then(|b| b.error.code);
        Err(match (status, code) {
            (_, Some(190)) | (401, _) => MediaError::TokenInvalid,
            (_, Some(4 | 17 | 613 | 80007 | 130429 | 131000 | 131016)) => MediaError::Retryable {
                http_status: Some(status),
            },
            (429 | 500..=599, _) => MediaError::Retryable {
                http_status: Some(status),
            },
            _ => MediaError::Rejected {
                http_status: status,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str, configured: Option<&str>) -> bool {
        let origin = configured.and_then(Origin::of);
        may_carry_token(&Url::parse(url).unwrap(), origin.as_ref())
    }

    #[test]
    fn the_token_goes_only_to_metas_https_hosts_or_the_configured_origin() {
        for yes in [
            "https://graph.facebook.com/v25.0/123",
            "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1",
            "https://mmg.whatsapp.net/v/t62/abc",
            "https://LOOKASIDE.FBSBX.COM/x",
        ] {
            assert!(ok(yes, None), "{yes}");
        }
        for no in [
            "http://lookaside.fbsbx.com/x",
            "https://evilfbsbx.com/x",
            "https://fbsbx.com.evil.example/x",
            "https://example.com/?graph.facebook.com",
            "https://user:pw@lookaside.fbsbx.com/x",
            "http://127.0.0.1:9999/x",
        ] {
            assert!(!ok(no, None), "{no}");
        }
        assert!(ok(
            "http://127.0.0.1:4000/media",
            Some("http://127.0.0.1:4000/v25.0")
        ));
        assert!(!ok(
            "http://127.0.0.1:4001/media",
            Some("http://127.0.0.1:4000/v25.0")
        ));
        assert!(!ok(
            "http://localhost:4000/media",
            Some("http://127.0.0.1:4000/v25.0")
        ));
    }
}
