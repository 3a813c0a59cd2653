//! Webhook deliveries shaped like Meta's, for the demo, `simulate` and the load test: the
//! WhatsApp Cloud API's text-message payload, serialised as Meta does (compact, non-ASCII
//! escaped as `\uXXXX`) and signed like Meta signs it.

use std::fmt::Write as _;

/// One customer text message to a business number.
#[derive(Debug, Clone)]
pub struct TextMessage<'a> {
    pub phone_number_id: &'a str,
    pub display_phone_number: &'a str,
    pub wa_message_id: &'a str,
    /// The customer's number, digits with country code.
    pub from: &'a str,
    pub profile_name: &'a str,
    pub text: &'a str,
    /// Unix seconds.
    pub timestamp: i64,
}

impl TextMessage<'_> {
    /// The delivery's body bytes, as Meta would post them.
    pub fn to_body(&self) -> Vec<u8> {
        let payload = serde_json::json!({
            "object": "whatsapp_business_account",
            "entry": [{
                "id": "102290129340398",
                "changes": [{
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": self.display_phone_number,
                            "phone_number_id": self.phone_number_id,
                        },
                        "contacts": [{"profile": {"name": self.profile_name}, "wa_id": self.from}],
                        "messages": [{
                            "from": self.from,
                            "id": self.wa_message_id,
                            "timestamp": self.timestamp.to_string(),
                            "type": "text",
                            "text": {"body": self.text},
                        }],
                    },
                }],
            }],
        });
        to_ascii_json(&payload).into_bytes()
    }
}

/// Compact JSON with every non-ASCII character escaped as `\uXXXX` (UTF-16 code units, so
/// characters outside the BMP become surrogate pairs), the way Meta serialises deliveries.
pub fn to_ascii_json(value: &serde_json::Value) -> String {
    let compact = value.to_string();
    // Outside strings serde_json writes ASCII only, so escaping every non-ASCII char is exact.
    let mut out = String::with_capacity(compact.len());
    for c in compact.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
    out
}

/// The `X-Hub-Signature-256` value for `body` under the app secret.
pub fn signature(app_secret: &[u8], body: &[u8]) -> String {
    alphadome::webhook::sign(app_secret, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_ascii_text_is_escaped_like_meta_and_still_parses_to_the_same_text() {
        let text = "Habari! Bei ya gitaa ni ngapi? 🎸 café";
        let json = to_ascii_json(&serde_json::json!({ "t": text }));
        assert!(json.is_ascii());
        assert!(json.contains("\\ud83c\\udfb8"));
        assert!(json.contains("caf\\u00e9"));
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["t"], text);
    }

    #[test]
    fn a_text_message_body_parses_as_a_webhook_payload_with_its_message() {
        let body = TextMessage {
            phone_number_id: "110000000001",
            display_phone_number: "254700000001",
            wa_message_id: "wamid.test.1",
            from: "254711000111",
            profile_name: "Wanjiku",
            text: "Mko wapi?",
            timestamp: 1_795_928_400,
        }
        .to_body();
        let payload = alphadome::webhook::WebhookPayload::from_slice(&body).unwrap();
        let events = alphadome::webhook::extract_events(&payload);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].phone_number_id, "110000000001");
    }
}
