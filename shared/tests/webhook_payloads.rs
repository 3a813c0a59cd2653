//! Meta webhook bodies as the webhook receives them (fixtures under `tests/data/payloads/`, one
//! per message type, non-ASCII escaped as Meta sends it): signature checks on the raw bytes, and
//! what each body parses and normalises to.

use std::path::PathBuf;

use alphadome::job::{Job, JobKind};
use alphadome::webhook::payload::{ChangeValue, DeliveryStatus, WebhookPayload};
use alphadome::webhook::signature::{sign, verify, MalformedSignature, SignatureError};
use alphadome::webhook::{
    extract_events, phone_number_ids, value_errors, EventKind, InboundMessage, StatusUpdate,
    WebhookEvent,
};
use uuid::Uuid;

const APP_SECRET: &[u8] = b"6c1f0d3e9a0b4c2d8e7f6a5b4c3d2e1f";
const BUSINESS_NUMBER: &str = "106540352242922";
const CUSTOMER: &str = "254712345678";
const CUSTOMER_BSUID: &str = "KE.1502576394655843";
const OUTBOUND_WAMID: &str = "wamid.HBgMMjU0NzEyMzQ1Njc4FQIAERgSNUE3RjBFQzQ5QkM4RjgwMjdBAA==";

fn payloads_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/payloads")
}

fn raw(name: &str) -> Vec<u8> {
    let path = payloads_dir().join(format!("{name}.json"));
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn parse(name: &str) -> WebhookPayload {
    WebhookPayload::from_slice(&raw(name)).unwrap_or_else(|err| panic!("{name}: {err}"))
}

fn events(name: &str) -> Vec<WebhookEvent> {
    extract_events(&parse(name))
}

fn only_message(name: &str) -> InboundMessage {
    match events(name).as_slice() {
        [WebhookEvent {
            phone_number_id,
            kind: EventKind::Message(message),
        }] => {
            assert_eq!(phone_number_id, BUSINESS_NUMBER, "{name}");
            message.clone()
        }
        other => panic!("{name}: expected one message event, got {other:?}"),
    }
}

fn only_status(name: &str) -> StatusUpdate {
    match events(name).as_slice() {
        [WebhookEvent {
            phone_number_id,
            kind: EventKind::Status(status),
        }] => {
            assert_eq!(phone_number_id, BUSINESS_NUMBER, "{name}");
            status.clone()
        }
        other => panic!("{name}: expected one status event, got {other:?}"),
    }
}

fn first_raw_message(payload: &WebhookPayload) -> &alphadome::webhook::payload::Message {
    &payload.entry[0].changes[0]
        .messages()
        .expect("a messages change")
        .messages[0]
}

fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(payloads_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// --- signature -------------------------------------------------------------------------------

#[test]
fn a_body_signed_with_the_app_secret_verifies() {
    for name in fixture_names() {
        let body = raw(&name);
        let header = sign(APP_SECRET, &body);
        assert_eq!(
            verify(APP_SECRET, &body, Some(header.as_bytes())),
            Ok(()),
            "{name}"
        );
    }
}

#[test]
fn a_body_changed_by_one_byte_does_not_verify() {
    let body = raw("text");
    let header = sign(APP_SECRET, &body);
    let mut tampered = body.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 0x01;
    assert_eq!(
        verify(APP_SECRET, &tampered, Some(header.as_bytes())),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn a_re_serialised_body_of_the_same_json_does_not_verify() {
    let body = raw("text");
    let header = sign(APP_SECRET, &body);
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let reserialised = serde_json::to_vec(&value).unwrap();
    assert_ne!(reserialised, body);
    assert_eq!(
        verify(APP_SECRET, &reserialised, Some(header.as_bytes())),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn an_uppercase_digest_is_rejected_even_when_it_encodes_the_right_bytes() {
    let body = raw("text");
    let digest = sign(APP_SECRET, &body)
        .trim_start_matches("sha256=")
        .to_uppercase();
    let header = format!("sha256={digest}");
    assert_eq!(
        verify(APP_SECRET, &body, Some(header.as_bytes())),
        Err(SignatureError::Malformed(
            MalformedSignature::NotLowercaseHex
        ))
    );
}

#[test]
fn a_sha1_header_is_rejected_as_the_wrong_scheme() {
    let body = raw("text");
    let digest = sign(APP_SECRET, &body)
        .trim_start_matches("sha256=")
        .to_owned();
    for header in [format!("sha1={}", &digest[..40]), format!("sha1={digest}")] {
        assert_eq!(
            verify(APP_SECRET, &body, Some(header.as_bytes())),
            Err(SignatureError::Malformed(MalformedSignature::WrongScheme))
        );
    }
}

#[test]
fn a_digest_without_its_prefix_is_rejected_as_the_wrong_scheme() {
    let body = raw("text");
    let digest = sign(APP_SECRET, &body)
        .trim_start_matches("sha256=")
        .to_owned();
    assert_eq!(
        verify(APP_SECRET, &body, Some(digest.as_bytes())),
        Err(SignatureError::Malformed(MalformedSignature::WrongScheme))
    );
}

#[test]
fn a_missing_header_is_rejected_as_missing() {
    assert_eq!(
        verify(APP_SECRET, &raw("text"), None),
        Err(SignatureError::Missing)
    );
}

#[test]
fn an_empty_digest_is_rejected_as_the_wrong_length() {
    assert_eq!(
        verify(APP_SECRET, &raw("text"), Some(b"sha256=")),
        Err(SignatureError::Malformed(MalformedSignature::WrongLength))
    );
}

#[test]
fn an_odd_length_digest_is_rejected_as_the_wrong_length() {
    let body = raw("text");
    let header = sign(APP_SECRET, &body);
    let odd = &header[..header.len() - 1];
    assert_eq!(
        verify(APP_SECRET, &body, Some(odd.as_bytes())),
        Err(SignatureError::Malformed(MalformedSignature::WrongLength))
    );
}

#[test]
fn a_digest_with_trailing_whitespace_is_rejected() {
    let body = raw("text");
    let header = format!("{}\n", sign(APP_SECRET, &body));
    assert_eq!(
        verify(APP_SECRET, &body, Some(header.as_bytes())),
        Err(SignatureError::Malformed(MalformedSignature::WrongLength))
    );
}

#[test]
fn a_digest_of_64_non_hex_characters_is_rejected_as_not_hex() {
    let header = format!("sha256={}", "z".repeat(64));
    assert_eq!(
        verify(APP_SECRET, &raw("text"), Some(header.as_bytes())),
        Err(SignatureError::Malformed(
            MalformedSignature::NotLowercaseHex
        ))
    );
}

#[test]
fn a_signature_made_with_another_apps_secret_is_a_mismatch() {
    let body = raw("text");
    let header = sign(b"another-apps-secret", &body);
    assert_eq!(
        verify(APP_SECRET, &body, Some(header.as_bytes())),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn escaped_unicode_verifies_on_the_raw_bytes_and_not_once_decoded_and_re_encoded() {
    let body = raw("swahili_emoji_escaped");
    assert!(body.is_ascii(), "the fixture keeps Meta's \\uXXXX escapes");
    assert!(body.windows(12).any(|w| w == br"\ud83c\udfb8"));
    let header = sign(APP_SECRET, &body);
    assert_eq!(verify(APP_SECRET, &body, Some(header.as_bytes())), Ok(()));

    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let reencoded = serde_json::to_vec_pretty(&value).unwrap();
    assert_eq!(
        verify(APP_SECRET, &reencoded, Some(header.as_bytes())),
        Err(SignatureError::Mismatch)
    );
}

// --- parsing and events ----------------------------------------------------------------------

#[test]
fn every_fixture_parses_as_a_whatsapp_business_account_payload() {
    let names = fixture_names();
    assert_eq!(names.len(), 26, "{names:?}");
    for name in names {
        assert_eq!(parse(&name).object, "whatsapp_business_account", "{name}");
    }
}

#[test]
fn a_text_message_yields_its_body_sender_and_profile_name() {
    let message = only_message("text");
    assert_eq!(message.message_type, "text");
    assert_eq!(
        message.text.as_deref(),
        Some("Do you deliver to Westlands?")
    );
    assert_eq!(message.from_wa_id.as_deref(), Some(CUSTOMER));
    assert_eq!(message.from_user_id.as_deref(), Some(CUSTOMER_BSUID));
    assert_eq!(message.profile_name.as_deref(), Some("Amina Wanjiku"));
    assert_eq!(message.timestamp, 1_749_416_383);
    assert!(message.wa_message_id.starts_with("wamid."));
    assert_eq!(message.media_id, None);
}

#[test]
fn an_image_message_yields_its_media_id_mime_type_and_caption() {
    let message = only_message("image");
    assert_eq!(message.message_type, "image");
    assert_eq!(message.media_id.as_deref(), Some("1479537139650973"));
    assert_eq!(message.media_mime_type.as_deref(), Some("image/jpeg"));
    assert_eq!(message.text.as_deref(), Some("Is this one in stock?"));
}

#[test]
fn a_voice_note_yields_its_media_id_and_no_text() {
    let message = only_message("audio");
    assert_eq!(message.message_type, "audio");
    assert_eq!(message.media_id.as_deref(), Some("1003383421387256"));
    assert_eq!(
        message.media_mime_type.as_deref(),
        Some("audio/ogg; codecs=opus")
    );
    assert_eq!(message.text, None);
    let payload = parse("audio");
    assert_eq!(
        first_raw_message(&payload).audio.as_ref().unwrap().voice,
        Some(true)
    );
}

#[test]
fn a_video_message_yields_its_caption_and_media_id() {
    let message = only_message("video");
    assert_eq!(message.media_id.as_deref(), Some("1166846181421424"));
    assert_eq!(
        message.text.as_deref(),
        Some("This is the noise the amp makes")
    );
}

#[test]
fn a_document_message_yields_its_caption_and_keeps_its_filename() {
    let message = only_message("document");
    assert_eq!(message.media_id.as_deref(), Some("2188349281472953"));
    assert_eq!(message.media_mime_type.as_deref(), Some("application/pdf"));
    assert_eq!(message.text.as_deref(), Some("Our event booking form"));
    let payload = parse("document");
    let document = first_raw_message(&payload).document.as_ref().unwrap();
    assert_eq!(document.filename.as_deref(), Some("booking-form.pdf"));
}

#[test]
fn a_sticker_yields_its_media_id_and_no_text() {
    let message = only_message("sticker");
    assert_eq!(message.media_id.as_deref(), Some("1871829406891234"));
    assert_eq!(message.media_mime_type.as_deref(), Some("image/webp"));
    assert_eq!(message.text, None);
    let payload = parse("sticker");
    assert_eq!(
        first_raw_message(&payload)
            .sticker
            .as_ref()
            .unwrap()
            .animated,
        Some(false)
    );
}

#[test]
fn a_location_yields_its_name_and_address_as_text_and_keeps_its_coordinates() {
    let message = only_message("location");
    assert_eq!(
        message.text.as_deref(),
        Some("Sarit Centre, Karuna Rd, Westlands, Nairobi")
    );
    let payload = parse("location");
    let location = first_raw_message(&payload).location.as_ref().unwrap();
    assert_eq!(location.latitude, Some(-1.2612));
    assert_eq!(location.longitude, Some(36.8026));
    assert_eq!(location.url.as_deref(), Some("https://www.saritcentre.com"));
}

#[test]
fn a_shared_contact_card_is_kept_and_has_no_text() {
    let message = only_message("contacts");
    assert_eq!(message.message_type, "contacts");
    assert_eq!(message.text, None);
    let payload = parse("contacts");
    let cards = &first_raw_message(&payload).contacts;
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0]["name"]["formatted_name"], "Juma Otieno");
    assert_eq!(cards[0]["phones"][0]["wa_id"], "254700111222");
}

#[test]
fn an_interactive_button_reply_yields_the_button_title_id_and_the_message_replied_to() {
    let message = only_message("interactive_button_reply");
    assert_eq!(message.message_type, "interactive");
    assert_eq!(message.text.as_deref(), Some("Book a table"));
    assert_eq!(message.reply_id.as_deref(), Some("book_table"));
    assert_eq!(message.context_message_id.as_deref(), Some(OUTBOUND_WAMID));
}

#[test]
fn an_interactive_list_reply_yields_the_row_title_and_id() {
    let message = only_message("interactive_list_reply");
    assert_eq!(message.text.as_deref(), Some("Mains"));
    assert_eq!(message.reply_id.as_deref(), Some("menu_mains"));
    let payload = parse("interactive_list_reply");
    let interactive = first_raw_message(&payload).interactive.as_ref().unwrap();
    assert_eq!(interactive.interactive_type.as_deref(), Some("list_reply"));
    assert_eq!(
        interactive
            .list_reply
            .as_ref()
            .unwrap()
            .description
            .as_deref(),
        Some("Nyama choma, pilau and more")
    );
}

#[test]
fn a_template_button_tap_yields_its_text_and_payload() {
    let message = only_message("button");
    assert_eq!(message.message_type, "button");
    assert_eq!(message.text.as_deref(), Some("Stop promotions"));
    assert_eq!(message.reply_id.as_deref(), Some("STOP_PROMOTIONS"));
    assert_eq!(message.context_message_id.as_deref(), Some(OUTBOUND_WAMID));
}

#[test]
fn a_reaction_yields_its_emoji_and_keeps_the_message_reacted_to() {
    let message = only_message("reaction");
    assert_eq!(message.text.as_deref(), Some("👍"));
    let payload = parse("reaction");
    let reaction = first_raw_message(&payload).reaction.as_ref().unwrap();
    assert_eq!(reaction.message_id.as_deref(), Some(OUTBOUND_WAMID));
}

#[test]
fn an_order_yields_its_note_and_keeps_its_items() {
    let message = only_message("order");
    assert_eq!(message.text.as_deref(), Some("Please deliver after 5pm"));
    let payload = parse("order");
    let order = first_raw_message(&payload).order.as_ref().unwrap();
    assert_eq!(order.catalog_id.as_deref(), Some("194836987003835"));
    assert_eq!(order.product_items.len(), 2);
    assert_eq!(order.product_items[0].quantity, Some(2.0));
    assert_eq!(order.product_items[1].item_price, Some(1200.5));
    assert_eq!(order.product_items[1].currency.as_deref(), Some("KES"));
}

#[test]
fn a_system_message_has_no_contacts_and_no_customer_text() {
    let message = only_message("system");
    assert_eq!(message.message_type, "system");
    assert_eq!(
        message.text, None,
        "the body is Meta's sentence, with phone numbers"
    );
    assert_eq!(message.profile_name, None);
    assert_eq!(message.from_wa_id.as_deref(), Some(CUSTOMER));
    let payload = parse("system");
    let system = first_raw_message(&payload).system.as_ref().unwrap();
    assert_eq!(system.system_type.as_deref(), Some("user_changed_number"));
    assert_eq!(system.wa_id.as_deref(), Some("254733000111"));
}

#[test]
fn an_unsupported_message_parses_with_its_errors() {
    let message = only_message("unsupported_with_errors");
    assert_eq!(message.message_type, "unsupported");
    assert_eq!(message.text, None);
    let payload = parse("unsupported_with_errors");
    let raw_message = first_raw_message(&payload);
    assert_eq!(raw_message.errors[0].code, Some(131051));
    assert_eq!(
        raw_message.errors[0]
            .error_data
            .as_ref()
            .unwrap()
            .details
            .as_deref(),
        Some("Message type is currently not supported.")
    );
    assert_eq!(
        raw_message
            .unsupported
            .as_ref()
            .unwrap()
            .unsupported_type
            .as_deref(),
        Some("edit")
    );
}

#[test]
fn a_message_from_an_ad_carries_its_referral_source_and_the_message_it_replies_to() {
    let message = only_message("text_with_context_and_referral");
    assert_eq!(
        message.referral_source_id.as_deref(),
        Some("120208930283540123")
    );
    assert_eq!(message.context_message_id.as_deref(), Some(OUTBOUND_WAMID));
    assert_eq!(
        message.text.as_deref(),
        Some("Hi! Is the weekend jam session still on?")
    );
    let payload = parse("text_with_context_and_referral");
    let raw_message = first_raw_message(&payload);
    let referral = raw_message.referral.as_ref().unwrap();
    assert_eq!(referral.source_type.as_deref(), Some("ad"));
    assert!(referral.ctwa_clid.as_deref().unwrap().starts_with("ARAk"));
    assert_eq!(
        referral.welcome_message.as_ref().unwrap().text.as_deref(),
        Some("Karibu! Ask us anything about the jam.")
    );
    let context = raw_message.context.as_ref().unwrap();
    assert_eq!(context.forwarded, Some(false));
    assert_eq!(
        context
            .referred_product
            .as_ref()
            .unwrap()
            .product_retailer_id
            .as_deref(),
        Some("jam-ticket")
    );
}

#[test]
fn a_sender_known_only_by_business_scoped_user_id_has_no_wa_id_but_a_name() {
    let message = only_message("text_bsuid_without_wa_id");
    assert_eq!(message.from_wa_id, None);
    assert_eq!(message.from_user_id.as_deref(), Some(CUSTOMER_BSUID));
    assert_eq!(message.sender(), Some(CUSTOMER_BSUID));
    assert_eq!(message.profile_name.as_deref(), Some("Amina Wanjiku"));
    let payload = parse("text_bsuid_without_wa_id");
    let contact = &payload.entry[0].changes[0].messages().unwrap().contacts[0];
    assert_eq!(contact.wa_id, None);
    assert_eq!(
        contact.profile.as_ref().unwrap().username.as_deref(),
        Some("@amina.w")
    );
}

#[test]
fn a_sent_status_yields_its_recipient_and_keeps_pricing_and_conversation() {
    let status = only_status("status_sent");
    assert_eq!(status.status, DeliveryStatus::Sent);
    assert_eq!(status.wa_message_id, OUTBOUND_WAMID);
    assert_eq!(status.timestamp, 1_749_416_390);
    assert_eq!(status.recipient_id.as_deref(), Some(CUSTOMER));
    assert_eq!(status.recipient_user_id.as_deref(), Some(CUSTOMER_BSUID));
    assert_eq!(status.error_code, None);
    let payload = parse("status_sent");
    let raw_status = &payload.entry[0].changes[0].messages().unwrap().statuses[0];
    assert_eq!(
        raw_status
            .pricing
            .as_ref()
            .unwrap()
            .pricing_model
            .as_deref(),
        Some("PMP")
    );
    let conversation = raw_status.conversation.as_ref().unwrap();
    assert_eq!(
        conversation.origin.as_ref().unwrap().origin_type.as_deref(),
        Some("service")
    );
}

#[test]
fn a_delivered_status_yields_one_delivered_update() {
    assert_eq!(
        only_status("status_delivered").status,
        DeliveryStatus::Delivered
    );
}

#[test]
fn a_read_status_yields_one_read_update() {
    let status = only_status("status_read");
    assert_eq!(status.status, DeliveryStatus::Read);
    assert_eq!(status.status.as_str(), "read");
}

#[test]
fn a_status_update_for_a_failed_message_carries_its_error_code() {
    let status = only_status("status_failed_with_errors_and_pricing");
    assert_eq!(status.status, DeliveryStatus::Failed);
    assert_eq!(status.error_code, Some(131047));
    assert_eq!(status.error_title.as_deref(), Some("Re-engagement message"));
    assert_eq!(
        status.recipient_user_id, None,
        "a failed send to a phone number has no user id"
    );
    let payload = parse("status_failed_with_errors_and_pricing");
    let raw_status = &payload.entry[0].changes[0].messages().unwrap().statuses[0];
    assert_eq!(raw_status.pricing.as_ref().unwrap().billable, Some(false));
    assert!(raw_status.errors[0]
        .href
        .as_deref()
        .unwrap()
        .contains("error-codes"));
}

#[test]
fn value_level_errors_yield_no_events_but_are_reported_with_their_number() {
    let payload = parse("value_level_errors");
    assert!(extract_events(&payload).is_empty());
    let errors = value_errors(&payload);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, BUSINESS_NUMBER);
    assert_eq!(errors[0].1.code, Some(130429));
    assert_eq!(phone_number_ids(&payload), vec![BUSINESS_NUMBER]);
}

#[test]
fn two_entries_for_two_business_numbers_route_each_message_to_its_own_number() {
    let payload = parse("two_entries_two_tenants");
    assert_eq!(
        phone_number_ids(&payload),
        vec![BUSINESS_NUMBER, "331847169975482"]
    );
    let events = extract_events(&payload);
    assert_eq!(events.len(), 2);
    let routed: Vec<(&str, Option<&str>)> = events
        .iter()
        .map(|event| match &event.kind {
            EventKind::Message(message) => {
                (event.phone_number_id.as_str(), message.text.as_deref())
            }
            EventKind::Status(_) => panic!("no statuses here"),
        })
        .collect();
    assert_eq!(
        routed,
        vec![
            (BUSINESS_NUMBER, Some("Table for four tonight?")),
            ("331847169975482", Some("Je, mna gitaa za watoto?")),
        ]
    );
    let EventKind::Message(second) = &events[1].kind else {
        unreachable!()
    };
    assert_eq!(second.profile_name.as_deref(), Some("Baraka Mwangi"));
    assert_eq!(second.from_user_id, None);
}

#[test]
fn every_change_of_an_entry_is_handled_not_just_the_first() {
    let events = events("two_changes");
    assert_eq!(events.len(), 2);
    assert!(
        matches!(&events[0].kind, EventKind::Message(m) if m.text.as_deref() == Some("Thanks, see you then"))
    );
    assert!(
        matches!(&events[1].kind, EventKind::Status(s) if s.status == DeliveryStatus::Delivered)
    );
    assert!(events
        .iter()
        .all(|event| event.phone_number_id == BUSINESS_NUMBER));
    assert_eq!(
        phone_number_ids(&parse("two_changes")),
        vec![BUSINESS_NUMBER]
    );
}

#[test]
fn unknown_types_statuses_fields_and_other_webhook_fields_still_parse() {
    let payload = parse("unknown_type_and_unknown_fields");
    let changes = &payload.entry[0].changes;
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[1].field, "account_update");
    assert!(matches!(changes[1].value, ChangeValue::Other(_)));

    let events = extract_events(&payload);
    assert_eq!(events.len(), 2, "the account_update change yields nothing");
    let EventKind::Message(message) = &events[0].kind else {
        panic!("{events:?}")
    };
    assert_eq!(message.message_type, "poll_vote");
    assert_eq!(
        message.text, None,
        "a text object on a non-text type is not the customer's text"
    );
    assert_eq!(message.profile_name.as_deref(), Some("Amina Wanjiku"));
    let EventKind::Status(status) = &events[1].kind else {
        panic!("{events:?}")
    };
    assert_eq!(status.status, DeliveryStatus::Other("played".into()));
    assert_eq!(phone_number_ids(&payload), vec![BUSINESS_NUMBER]);
}

#[test]
fn escaped_swahili_and_emoji_decode_to_the_original_text() {
    let message = only_message("swahili_emoji_escaped");
    assert_eq!(
        message.text.as_deref(),
        Some("Habari! Mnafungua saa ngapi? 🎸")
    );
    assert_eq!(message.profile_name.as_deref(), Some("Zawadi Njeri 🌸"));
}

// --- jobs ------------------------------------------------------------------------------------

#[test]
fn every_event_of_every_fixture_becomes_a_job_that_survives_the_queue() {
    let tenant = Uuid::from_u128(0x0196_0000_0000_7000_8000_0000_0000_0042);
    let mut jobs = 0;
    for name in fixture_names() {
        for event in events(&name) {
            let job = Job::new(tenant, event);
            let json = job.to_json();
            assert!(json.len() < 4096, "{name}: jobs stay small");
            assert_eq!(Job::from_json(&json).as_ref(), Ok(&job), "{name}");
            for id in [job.group_id(), job.dedup_id()] {
                assert!((1..=128).contains(&id.len()), "{name}: {id}");
                assert!(id.bytes().all(|b| b.is_ascii_graphic()), "{name}: {id}");
            }
            assert!(!job.group_id().contains(CUSTOMER), "{name}");
            jobs += 1;
        }
    }
    assert_eq!(
        jobs, 28,
        "one job per message or status across the fixtures"
    );
}

#[test]
fn a_message_and_the_status_of_the_reply_to_it_share_a_queue_group() {
    let tenant = Uuid::from_u128(7);
    let two = events("two_changes");
    let message = Job::new(tenant, two[0].clone());
    let status = Job::new(tenant, two[1].clone());
    assert!(matches!(message.kind, JobKind::Message(_)));
    assert!(matches!(status.kind, JobKind::Status(_)));
    assert_eq!(message.group_id(), status.group_id());
    assert_ne!(message.dedup_id(), status.dedup_id());
}

#[test]
fn a_status_update_carries_metas_pricing_into_the_job_and_an_older_job_without_it_still_parses() {
    let status = only_status("status_sent");
    assert_eq!(status.pricing_category.as_deref(), Some("service"));
    assert_eq!(status.pricing_billable, Some(false));
    assert_eq!(
        status.pricing_type.as_deref(),
        Some("free_customer_service")
    );
    let job = Job::new(
        Uuid::nil(),
        WebhookEvent {
            phone_number_id: BUSINESS_NUMBER.into(),
            kind: EventKind::Status(status.clone()),
        },
    );
    let wire = serde_json::to_string(&job).unwrap();
    assert!(wire.contains(r#""pricing_category":"service""#), "{wire}");
    let back: Job = serde_json::from_str(&wire).unwrap();
    assert_eq!(back, job);
    // A job written before pricing was carried.
    let old = r#"{"v":1,"tenant_id":"00000000-0000-0000-0000-000000000000","phone_number_id":"1","kind":"status","wa_message_id":"wamid.x","status":"failed","timestamp":1,"error_code":131047,"error_title":"Re-engagement message"}"#;
    let old: Job = serde_json::from_str(old).unwrap();
    let JobKind::Status(s) = old.kind else {
        panic!("a status job")
    };
    assert_eq!((s.error_code, s.pricing_category), (Some(131047), None));
}

/// A status carries back what the send was tagged with (`biz_opaque_callback_data`): one of
/// the responder's reply tags names the reply; anything else (another tool on the same number,
/// a damaged tag) names nothing.
#[test]
fn a_status_names_the_reply_its_message_was_tagged_with_and_nothing_else() {
    let reply = uuid::Uuid::new_v4();
    let with = |data: &str| {
        let mut doc: serde_json::Value = serde_json::from_slice(&raw("status_sent")).unwrap();
        doc["entry"][0]["changes"][0]["value"]["statuses"][0]["biz_opaque_callback_data"] =
            serde_json::Value::String(data.to_owned());
        let payload = WebhookPayload::from_slice(&serde_json::to_vec(&doc).unwrap()).unwrap();
        match extract_events(&payload).as_slice() {
            [WebhookEvent {
                kind: EventKind::Status(s),
                ..
            }] => s.reply_id,
            other => panic!("expected one status, got {other:?}"),
        }
    };
    assert_eq!(with(&alphadome::whatsapp::reply_tag(reply)), Some(reply));
    assert_eq!(only_status("status_sent").reply_id, None);
    for foreign in [
        "order-4411",
        &reply.to_string(),
        "alphadome:reply:",
        "alphadome:reply:not-a-uuid",
        &format!("alphadome:reply:{}", reply.simple()),
        &format!("alphadome:reply:{reply}x"),
        &format!("xalphadome:reply:{reply}"),
    ] {
        assert_eq!(with(foreign), None, "{foreign}");
    }
}
