//! The answer policy, pure: given the facts about a message, what the bot does. No I/O, so
//! every rule is unit-tested on its own.

use chrono::{DateTime, Utc};

use crate::intent::ControlIntent;
use crate::openai::{ChatMessage, Role};
use crate::store::{EntryRecord, Turn};

/// WhatsApp's customer-service window: free-form messages only within 24 h of the customer's.
pub const SERVICE_WINDOW_SECS: i64 = 24 * 60 * 60;

/// Why a message got no reply (stored in `conversations.note`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    TenantInactive,
    BotDisabled,
    Unsubscribed,
    Paused,
    WindowClosed,
    HourlyLimit,
    NotAnswerable,
    NoToken,
}

impl Silence {
    /// Whether this silence comes from a switch or limit of the tenant's (what `ask` reports
    /// as `stopped_by`), not from the message itself.
    pub fn is_a_switch(self) -> bool {
        matches!(
            self,
            Self::TenantInactive | Self::BotDisabled | Self::NoToken | Self::HourlyLimit
        )
    }

    pub fn note(self) -> &'static str {
        match self {
            Self::TenantInactive => "tenant_inactive",
            Self::BotDisabled => "bot_disabled",
            Self::Unsubscribed => "unsubscribed",
            Self::Paused => "paused_for_human",
            Self::WindowClosed => "window_closed",
            Self::HourlyLimit => "hourly_limit",
            Self::NotAnswerable => "not_answerable",
            Self::NoToken => "no_whatsapp_token",
        }
    }
}

/// How a reply was produced (stored in `conversations.reply_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Faq,
    Canned,
    Ai,
    Fallback,
    Escalation,
    Welcome,
    Control,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Faq => "faq",
            Self::Canned => "canned",
            Self::Ai => "ai",
            Self::Fallback => "fallback",
            Self::Escalation => "escalation",
            Self::Welcome => "welcome",
            Self::Control => "control",
        }
    }
}

/// The facts a decision is made on.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub tenant_active: bool,
    pub bot_enabled: bool,
    pub has_token: bool,
    pub was_subscribed: bool,
    pub paused_until: Option<DateTime<Utc>>,
    pub replies_this_hour: Option<i32>,
    pub max_per_hour: i32,
    pub message_time: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub text: Option<&'a str>,
    pub message_type: &'a str,
    pub intent: Option<ControlIntent>,
    pub faq: Option<&'a EntryRecord>,
    pub ai_available: bool,
    /// A voice note may be transcribed: the tenant's switch is on, there is an AI key (the
    /// tenant's or the platform's), a media id, and budget left.
    pub can_transcribe: bool,
    /// A picture may be shown to the chat model: the tenant's switch is on and the AI is
    /// available (on, with a key and budget left).
    pub can_see_pictures: bool,
}

/// What to do before any reply is written.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision<'a> {
    Silent(Silence),
    /// Confirm STOP (the last message the customer gets) or START.
    Control(ControlIntent),
    Answer(&'a EntryRecord),
    AskAi,
    /// Transcribe the voice note, then decide again on its words (FAQ → AI → hand-over).
    Transcribe,
    /// Hand over to a person: the customer asked, nothing else can answer, or an order came in.
    Escalate(Handover),
    /// Something without words we can read (media without caption, a voice note, a contact
    /// card): ask for words, no escalation.
    AskForText(Unreadable),
}

/// Why a conversation is handed to a person (said in the owner's notice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// The customer asked for a person.
    Asked,
    /// Neither the FAQ nor the AI could answer.
    Unanswered,
    /// The customer sent an order from the catalogue: only a person can confirm it.
    Order,
}

/// What a message carries that the bot cannot read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// A picture, video or document without a caption.
    Media,
    /// A voice note or audio file that is not transcribed (the tenant's switch is off, no AI
    /// key, or the transcription failed).
    VoiceNote,
    /// A shared contact card, or a location without a name or address.
    Shared,
}

/// What a message of one type carries for the policy. Decided on Meta's type first, so
/// that what the webhook put in `text` (a reaction's emoji, for one) cannot turn a message
/// that needs no answer into a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content<'a> {
    /// Words to answer: a text, the title of a tapped button or list row (interactive or
    /// template button), a media caption, a location's name and address.
    Words(&'a str),
    /// Nothing readable: ask for words.
    Unreadable(Unreadable),
    /// An order from the catalogue, with the customer's note if any.
    Order(Option<&'a str>),
    /// Nothing to answer: a reaction, a sticker, a system message, an unsupported or unknown
    /// type, a welcome request, an ephemeral message.
    Nothing,
}

/// What a message of type `message_type`, with the webhook's `text`, carries for the policy.
/// The README's table "What each message type gets" follows this function.
pub fn content_of<'a>(message_type: &str, text: Option<&'a str>) -> Content<'a> {
    let words = text.map(str::trim).filter(|t| !t.is_empty());
    match message_type {
        // Buttons and list rows carry the title the customer tapped; an interactive reply
        // without one (a Flow's answer) has nothing to answer.
        "text" => words.map_or(Content::Unreadable(Unreadable::Shared), Content::Words),
        "button" | "interactive" => words.map_or(Content::Nothing, Content::Words),
        "image" | "video" | "document" => {
            words.map_or(Content::Unreadable(Unreadable::Media), Content::Words)
        }
        "audio" => Content::Unreadable(Unreadable::VoiceNote),
        "location" => words.map_or(Content::Unreadable(Unreadable::Shared), Content::Words),
        "contacts" => Content::Unreadable(Unreadable::Shared),
        "order" => Content::Order(words),
        // A sticker is a 👍 or a smile in picture form, like a reaction: asking the customer
        // to type would answer a thank-you with a chore.
        _ => Content::Nothing,
    }
}

/// The words the FAQ, the control intents and the AI see: only those a customer wrote or
/// tapped, never a reaction's emoji or an order's note.
pub fn words_of<'a>(message_type: &str, text: Option<&'a str>) -> Option<&'a str> {
    match content_of(message_type, text) {
        Content::Words(w) => Some(w),
        _ => None,
    }
}

/// What the customer said, as the owner's notice quotes it: their words, or an order's note.
pub fn said_in<'a>(message_type: &str, text: Option<&'a str>) -> Option<&'a str> {
    match content_of(message_type, text) {
        Content::Words(w) | Content::Order(Some(w)) => Some(w),
        _ => None,
    }
}

/// The decision for one claimed message.
pub fn decide<'a>(f: &Facts<'a>) -> Decision<'a> {
    let content = content_of(f.message_type, f.text);
    // Only words can say STOP, START or "a person please".
    let intent = match content {
        Content::Words(_) => f.intent,
        _ => None,
    };
    if !f.tenant_active {
        return Decision::Silent(Silence::TenantInactive);
    }
    if !f.bot_enabled {
        return Decision::Silent(Silence::BotDisabled);
    }
    if !f.has_token {
        return Decision::Silent(Silence::NoToken);
    }
    if (f.now - f.message_time).num_seconds() >= SERVICE_WINDOW_SECS {
        return Decision::Silent(Silence::WindowClosed);
    }
    if content == Content::Nothing {
        return Decision::Silent(Silence::NotAnswerable);
    }
    match intent {
        Some(ControlIntent::Stop) if f.was_subscribed => {
            return Decision::Control(ControlIntent::Stop)
        }
        Some(ControlIntent::Stop) => return Decision::Silent(Silence::Unsubscribed),
        Some(ControlIntent::Start) if !f.was_subscribed => {
            return Decision::Control(ControlIntent::Start)
        }
        _ => {}
    }
    if !f.was_subscribed {
        return Decision::Silent(Silence::Unsubscribed);
    }
    if f.paused_until.is_some_and(|p| p > f.now) {
        return Decision::Silent(Silence::Paused);
    }
    if f.replies_this_hour.is_some_and(|n| n > f.max_per_hour) {
        return Decision::Silent(Silence::HourlyLimit);
    }
    match content {
        Content::Nothing => Decision::Silent(Silence::NotAnswerable),
        Content::Unreadable(Unreadable::VoiceNote) if f.can_transcribe => Decision::Transcribe,
        // A picture without a caption: the model looks at it (the plan adds it to the call).
        Content::Unreadable(Unreadable::Media)
            if f.message_type == "image" && f.can_see_pictures =>
        {
            Decision::AskAi
        }
        Content::Unreadable(what) => Decision::AskForText(what),
        Content::Order(_) => Decision::Escalate(Handover::Order),
        Content::Words(_) if intent == Some(ControlIntent::Human) => {
            Decision::Escalate(Handover::Asked)
        }
        Content::Words(_) => match f.faq {
            Some(entry) => Decision::Answer(entry),
            None if f.ai_available => Decision::AskAi,
            None => Decision::Escalate(Handover::Unanswered),
        },
    }
}

/// Whether a message may be counted against the hourly cap (it may get a reply).
pub fn may_reply(
    bot_enabled: bool,
    message_type: &str,
    text: Option<&str>,
    intent: Option<ControlIntent>,
) -> bool {
    bot_enabled
        && content_of(message_type, text) != Content::Nothing
        && !matches!(
            intent,
            Some(ControlIntent::Stop) | Some(ControlIntent::Start)
        )
}

pub fn stop_confirmation(business: &str) -> String {
    format!(
        "You will no longer receive messages from {business}. Reply START to hear from us again.\n\
         Hutapokea ujumbe zaidi kutoka {business}. Tuma START kujiunga tena."
    )
}

pub fn start_confirmation(business: &str) -> String {
    format!("Welcome back! {business} will answer your messages again. / Karibu tena!")
}

pub fn handover_reply(business: &str, why: Handover) -> String {
    match why {
        Handover::Order => format!(
            "Thanks for your order! A member of the {business} team will get back to you shortly to confirm it.\n\
             Asante kwa oda yako! Mmoja wa timu yetu atakujibu hivi punde."
        ),
        _ => format!(
            "Thanks for your message! A member of the {business} team will get back to you shortly.\n\
             Asante! Mmoja wa timu yetu atakujibu hivi punde."
        ),
    }
}

/// The owner's once-a-month notice that usage passed 80 % of a monthly budget.
pub fn budget_notice(business: &str, percent: i64) -> String {
    format!(
        "{business}: your assistant has used {percent}% of this month's budget. \
         At 100% AI answers stop until next month (FAQ answers and hand-overs go on). \
         Ask your Alphadome operator to raise the budget if you need more."
    )
}

/// The user turn sent with a picture that came without a caption.
pub const PICTURE_WITHOUT_WORDS: &str =
    "(The customer sent this picture without a message. Say briefly what you see that matters \
     to this business and how you can help with it.)";

/// The polite request for words, for what the bot cannot read.
pub fn ask_for_text_reply(what: Unreadable) -> String {
    match what {
        Unreadable::VoiceNote => "Thanks for your voice note! I can't listen to it right now - \
             please type your question and I'll help. \
             / Asante! Siwezi kusikiliza sauti sasa hivi, tafadhali andika swali lako."
            .to_owned(),
        Unreadable::Media | Unreadable::Shared => {
            "Thanks! I can only read text for now - please type your question and I'll help. \
             / Asante! Tafadhali andika swali lako."
                .to_owned()
        }
    }
}

/// The notice to the business's escalation phone: who needs a person and what they wrote.
/// This goes only to the business owner over WhatsApp, never to a log.
pub fn escalation_notice(
    business: &str,
    customer: &str,
    name: Option<&str>,
    text: Option<&str>,
    why: Handover,
) -> String {
    let who = match name {
        Some(n) => format!("{n} (+{customer})"),
        None => format!("+{customer}"),
    };
    let why = match why {
        Handover::Asked => "asked to talk to a person",
        Handover::Unanswered => "asked something the bot could not answer",
        Handover::Order => "sent an order that needs a person to confirm it",
    };
    let said = text
        .map(|t| format!("\nTheir message: \"{}\"", truncate(t, 500)))
        .unwrap_or_default();
    format!("[{business} assistant] {who} {why}. Please reply to them on WhatsApp.{said}")
}

/// The body parameters of the tenant's hand-over template, in order: `{{1}}` the business,
/// `{{2}}` the customer as the free-text notice names them, `{{3}}` what they said (at most
/// 200 characters). Graph refuses an empty parameter and one holding a newline, a tab or more
/// than four spaces in a row, so whitespace is folded and an empty one becomes a dash.
pub fn escalation_template_parameters(
    business: &str,
    customer: &str,
    name: Option<&str>,
    text: Option<&str>,
    message_type: &str,
) -> Vec<String> {
    let fold = |s: &str| {
        let folded = s.split_whitespace().collect::<Vec<_>>().join(" ");
        if folded.is_empty() {
            "-".to_owned()
        } else {
            folded
        }
    };
    let who = match name.map(fold).filter(|n| n != "-") {
        Some(n) => format!("{n} (+{customer})"),
        None => format!("+{customer}"),
    };
    let said = match text {
        Some(t) => truncate(&fold(t), 200),
        None if message_type == "order" => "(an order from the catalogue)".to_owned(),
        None if message_type == "audio" => "(a voice note)".to_owned(),
        None if message_type == "image" => "(a picture)".to_owned(),
        None => "(no text)".to_owned(),
    };
    vec![fold(business), who, said]
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// The conversation sent to the model: rules, the tenant's prompt and tone, the most relevant
/// facts, recent turns, and the message.
/// What one tenant may spend of an AI call, so no tenant can burn the platform's shared key:
/// the model comes from the platform's allowlist, and prompt, grounding, history, the
/// customer's message and the answer are capped.
#[derive(Debug, Clone)]
pub struct AiLimits {
    /// Models a template may name; any other falls back to the deployment's default.
    pub allowed_models: Vec<String>,
    pub max_system_prompt_chars: usize,
    pub max_grounding_chars: usize,
    pub max_turn_chars: usize,
    pub max_message_chars: usize,
    pub max_output_tokens: u32,
}

/// The models a template may name unless the operator sets `OPENAI_ALLOWED_MODELS`.
pub const DEFAULT_ALLOWED_MODELS: &[&str] = &["gpt-4o-mini", "gpt-4.1-mini", "gpt-4.1-nano"];

impl Default for AiLimits {
    fn default() -> Self {
        Self {
            allowed_models: DEFAULT_ALLOWED_MODELS
                .iter()
                .map(|m| m.to_string())
                .collect(),
            max_system_prompt_chars: 4_000,
            max_grounding_chars: 3_000,
            max_turn_chars: 500,
            max_message_chars: 1_000,
            max_output_tokens: 300,
        }
    }
}

impl AiLimits {
    /// The limits of this deployment (`OPENAI_ALLOWED_MODELS` replaces the built-in list).
    pub fn for_settings(settings: &crate::config::Settings) -> Self {
        let mut limits = Self::default();
        if let Some(models) = &settings.openai_allowed_models {
            limits.allowed_models = models.clone();
        }
        limits
    }

    /// Whether a template may name `model` (the deployment's default always may).
    pub fn allows(&self, model: &str, default: &str) -> bool {
        model == default || self.allowed_models.iter().any(|a| a == model)
    }

    /// The model to call: the template's when the platform allows it, else the default.
    pub fn model_for<'a>(&self, wanted: Option<&'a str>, default: &'a str) -> &'a str {
        match wanted.map(str::trim).filter(|m| !m.is_empty()) {
            Some(m) if self.allows(m, default) => m,
            Some(_) => {
                tracing::warn!("the template names a model outside the platform's allowlist; using the default");
                default
            }
            None => default,
        }
    }
}

/// At most `max` characters of `s` (on a character boundary).
fn capped(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// [`build_prompt`] within the platform's [`AiLimits`].
pub fn build_prompt_within(
    limits: &AiLimits,
    business: &str,
    system_prompt: Option<&str>,
    tone: Option<&str>,
    grounding: &[&EntryRecord],
    history: &[Turn],
    message: &str,
) -> Vec<ChatMessage> {
    let mut budget = limits.max_grounding_chars;
    let grounding: Vec<&EntryRecord> = grounding
        .iter()
        .copied()
        .take_while(|e| {
            let len = e.question.chars().count() + e.answer.chars().count();
            match budget.checked_sub(len) {
                Some(left) => {
                    budget = left;
                    true
                }
                None => false,
            }
        })
        .collect();
    let history: Vec<Turn> = history
        .iter()
        .map(|t| Turn {
            direction: t.direction.clone(),
            text: capped(&t.text, limits.max_turn_chars).to_owned(),
        })
        .collect();
    build_prompt(
        business,
        system_prompt.map(|p| capped(p, limits.max_system_prompt_chars)),
        tone.map(|t| capped(t, 100)),
        &grounding,
        &history,
        capped(message, limits.max_message_chars),
    )
}

pub fn build_prompt(
    business: &str,
    system_prompt: Option<&str>,
    tone: Option<&str>,
    grounding: &[&EntryRecord],
    history: &[Turn],
    message: &str,
) -> Vec<ChatMessage> {
    let mut system = String::new();
    system.push_str(&format!("You are the WhatsApp assistant of {business}.\n"));
    if let Some(p) = system_prompt.filter(|p| !p.trim().is_empty()) {
        system.push_str(p.trim());
        system.push('\n');
    }
    if let Some(t) = tone.filter(|t| !t.trim().is_empty()) {
        system.push_str(&format!("Tone: {}.\n", t.trim()));
    }
    system.push_str(
        "Rules:\n\
         - Only help with this business's products, services, hours, prices, payments, delivery and location; politely decline anything else.\n\
         - Answer in the customer's language: English, Swahili or Sheng, as they wrote.\n\
         - Keep it short for WhatsApp: at most 3 sentences, no markdown headings.\n\
         - Use only the facts below; if they do not answer the question, say a team member will follow up. Never invent prices, stock or promises.\n",
    );
    if !grounding.is_empty() {
        system.push_str("Facts about the business:\n");
        for e in grounding {
            system.push_str(&format!(
                "- Q: {} A: {}\n",
                e.question.trim(),
                e.answer.trim()
            ));
        }
    }
    let mut messages = vec![ChatMessage {
        role: Role::System,
        content: system,
    }];
    for t in history {
        let role = if t.direction == "outgoing" {
            Role::Assistant
        } else {
            Role::User
        };
        messages.push(ChatMessage {
            role,
            content: t.text.clone(),
        });
    }
    messages.push(ChatMessage {
        role: Role::User,
        content: message.to_owned(),
    });
    messages
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn entry() -> EntryRecord {
        EntryRecord {
            id: crate::domain::EntryId::new(),
            data_type: "faq".into(),
            question: "What are your hours?".into(),
            answer: "Mon-Sat 9-6".into(),
            category: None,
            priority: 0,
            phrasings: Vec::new(),
        }
    }

    fn facts<'a>(e: Option<&'a EntryRecord>) -> Facts<'a> {
        let now = Utc::now();
        Facts {
            tenant_active: true,
            bot_enabled: true,
            has_token: true,
            was_subscribed: true,
            paused_until: None,
            replies_this_hour: Some(1),
            max_per_hour: 10,
            message_time: now - Duration::seconds(5),
            now,
            text: Some("What are your hours?"),
            message_type: "text",
            intent: None,
            faq: e,
            ai_available: true,
            can_transcribe: false,
            can_see_pictures: false,
        }
    }

    #[test]
    fn a_faq_match_is_answered_from_the_entry() {
        let e = entry();
        assert_eq!(decide(&facts(Some(&e))), Decision::Answer(&e));
    }

    #[test]
    fn without_a_match_the_ai_answers_and_without_ai_a_person_is_asked() {
        assert_eq!(decide(&facts(None)), Decision::AskAi);
        let f = Facts {
            ai_available: false,
            ..facts(None)
        };
        assert_eq!(decide(&f), Decision::Escalate(Handover::Unanswered));
    }

    #[test]
    fn a_disabled_bot_or_inactive_tenant_stays_silent() {
        assert_eq!(
            decide(&Facts {
                bot_enabled: false,
                ..facts(None)
            }),
            Decision::Silent(Silence::BotDisabled)
        );
        assert_eq!(
            decide(&Facts {
                tenant_active: false,
                ..facts(None)
            }),
            Decision::Silent(Silence::TenantInactive)
        );
    }

    #[test]
    fn over_the_hourly_cap_the_bot_stays_silent() {
        assert_eq!(
            decide(&Facts {
                replies_this_hour: Some(11),
                ..facts(None)
            }),
            Decision::Silent(Silence::HourlyLimit)
        );
        assert_eq!(
            decide(&Facts {
                replies_this_hour: Some(10),
                ..facts(None)
            }),
            Decision::AskAi
        );
    }

    #[test]
    fn a_message_older_than_the_service_window_gets_no_free_form_reply() {
        let f = facts(None);
        let old = Facts {
            message_time: f.now - Duration::hours(25),
            ..f
        };
        assert_eq!(decide(&old), Decision::Silent(Silence::WindowClosed));
    }

    #[test]
    fn stop_is_confirmed_once_then_silence_until_start() {
        let stop = Facts {
            intent: Some(ControlIntent::Stop),
            ..facts(None)
        };
        assert_eq!(decide(&stop), Decision::Control(ControlIntent::Stop));
        let again = Facts {
            was_subscribed: false,
            ..stop
        };
        assert_eq!(decide(&again), Decision::Silent(Silence::Unsubscribed));
        let other = Facts {
            was_subscribed: false,
            ..facts(None)
        };
        assert_eq!(decide(&other), Decision::Silent(Silence::Unsubscribed));
        let start = Facts {
            was_subscribed: false,
            intent: Some(ControlIntent::Start),
            ..facts(None)
        };
        assert_eq!(decide(&start), Decision::Control(ControlIntent::Start));
    }

    #[test]
    fn asking_for_a_person_escalates_even_when_a_faq_matches() {
        let e = entry();
        let f = Facts {
            intent: Some(ControlIntent::Human),
            ..facts(Some(&e))
        };
        assert_eq!(decide(&f), Decision::Escalate(Handover::Asked));
    }

    #[test]
    fn while_paused_for_a_person_the_bot_stays_quiet() {
        let f = facts(None);
        let paused = Facts {
            paused_until: Some(f.now + Duration::minutes(30)),
            ..f.clone()
        };
        assert_eq!(decide(&paused), Decision::Silent(Silence::Paused));
        let over = Facts {
            paused_until: Some(f.now - Duration::minutes(1)),
            ..f
        };
        assert_eq!(decide(&over), Decision::AskAi);
    }

    #[test]
    fn media_without_words_asks_for_text_and_reactions_get_nothing() {
        let image = Facts {
            text: None,
            message_type: "image",
            ..facts(None)
        };
        assert_eq!(decide(&image), Decision::AskForText(Unreadable::Media));
        let reaction = Facts {
            text: None,
            message_type: "reaction",
            ..facts(None)
        };
        assert_eq!(decide(&reaction), Decision::Silent(Silence::NotAnswerable));
    }

    /// The messages of a fixture payload, built as the webhook builds them.
    fn fixture(name: &str) -> Vec<crate::webhook::InboundMessage> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/payloads")
            .join(format!("{name}.json"));
        inbound(&std::fs::read(path).unwrap())
    }

    fn inbound(body: &[u8]) -> Vec<crate::webhook::InboundMessage> {
        let payload = crate::webhook::WebhookPayload::from_slice(body).unwrap();
        crate::webhook::extract_events(&payload)
            .into_iter()
            .filter_map(|e| match e.kind {
                crate::webhook::EventKind::Message(m) => Some(m),
                crate::webhook::EventKind::Status(_) => None,
            })
            .collect()
    }

    fn only(name: &str) -> crate::webhook::InboundMessage {
        let mut all = fixture(name);
        assert_eq!(all.len(), 1, "{name}");
        all.remove(0)
    }

    /// The facts of `m` for a subscribed customer, with the webhook's `text` as it is (not
    /// filtered, so a type's rule cannot lean on the responder dropping the text) and the
    /// control intent the responder reads from the words.
    fn facts_of<'a>(
        m: &'a crate::webhook::InboundMessage,
        faq: Option<&'a EntryRecord>,
        ai_available: bool,
    ) -> Facts<'a> {
        let text = m.text.as_deref();
        Facts {
            text,
            message_type: &m.message_type,
            intent: words_of(&m.message_type, text).and_then(crate::intent::detect_control_intent),
            faq,
            ai_available,
            ..facts(None)
        }
    }

    /// The decision with a matching FAQ entry and the AI on, and with neither.
    fn both_ways(m: &crate::webhook::InboundMessage) -> (Decision<'_>, Decision<'_>) {
        let e: &'static EntryRecord = Box::leak(Box::new(entry()));
        (
            decide(&facts_of(m, Some(e), true)),
            decide(&facts_of(m, None, false)),
        )
    }

    #[test]
    fn a_text_is_answered_from_the_faq_then_the_ai_then_a_person() {
        let m = only("text");
        let e = entry();
        assert_eq!(decide(&facts_of(&m, Some(&e), true)), Decision::Answer(&e));
        assert_eq!(decide(&facts_of(&m, None, true)), Decision::AskAi);
        assert_eq!(
            decide(&facts_of(&m, None, false)),
            Decision::Escalate(Handover::Unanswered)
        );
    }

    #[test]
    fn a_tapped_button_or_list_row_is_answered_as_its_title() {
        for (name, title) in [
            ("interactive_button_reply", "Book a table"),
            ("interactive_list_reply", "Mains"),
        ] {
            let m = only(name);
            assert_eq!(words_of(&m.message_type, m.text.as_deref()), Some(title));
            let e = entry();
            assert_eq!(decide(&facts_of(&m, Some(&e), true)), Decision::Answer(&e));
            assert_eq!(decide(&facts_of(&m, None, true)), Decision::AskAi);
        }
    }

    #[test]
    fn a_template_buttons_reply_is_answered_as_its_text() {
        let m = only("button");
        assert_eq!(
            words_of(&m.message_type, m.text.as_deref()),
            Some("Stop promotions")
        );
        let e = entry();
        assert_eq!(decide(&facts_of(&m, Some(&e), true)), Decision::Answer(&e));
        assert_eq!(decide(&facts_of(&m, None, true)), Decision::AskAi);
    }

    #[test]
    fn a_reaction_gets_nothing_whether_or_not_it_carries_an_emoji() {
        let m = only("reaction");
        assert!(m.text.is_some(), "the fixture's reaction carries its emoji");
        let (with_help, without) = both_ways(&m);
        assert_eq!(with_help, Decision::Silent(Silence::NotAnswerable));
        assert_eq!(without, Decision::Silent(Silence::NotAnswerable));
        // Even if something read an intent into it.
        let asked = Facts {
            intent: Some(ControlIntent::Human),
            ..facts_of(&m, None, false)
        };
        assert_eq!(decide(&asked), Decision::Silent(Silence::NotAnswerable));
        let removed = crate::webhook::InboundMessage {
            text: None,
            ..m.clone()
        };
        assert_eq!(
            decide(&facts_of(&removed, None, false)),
            Decision::Silent(Silence::NotAnswerable)
        );
        assert_eq!(words_of(&m.message_type, m.text.as_deref()), None);
        assert!(!may_reply(true, &m.message_type, m.text.as_deref(), None));
    }

    #[test]
    fn a_picture_video_or_document_is_answered_by_its_caption_or_asks_for_words() {
        for (name, caption) in [
            ("image", "Is this one in stock?"),
            ("video", "This is the noise the amp makes"),
            ("document", "Our event booking form"),
        ] {
            let m = only(name);
            assert_eq!(m.text.as_deref(), Some(caption));
            assert_eq!(decide(&facts_of(&m, None, true)), Decision::AskAi);
            let bare = crate::webhook::InboundMessage {
                text: None,
                ..m.clone()
            };
            let (with_help, without) = both_ways(&bare);
            assert_eq!(with_help, Decision::AskForText(Unreadable::Media));
            assert_eq!(
                without,
                Decision::AskForText(Unreadable::Media),
                "no escalation"
            );
        }
    }

    #[test]
    fn a_voice_note_asks_the_customer_to_type_without_pinging_the_owner() {
        let m = only("audio");
        let (with_help, without) = both_ways(&m);
        assert_eq!(with_help, Decision::AskForText(Unreadable::VoiceNote));
        assert_eq!(without, Decision::AskForText(Unreadable::VoiceNote));
        assert!(ask_for_text_reply(Unreadable::VoiceNote).contains("voice note"));
    }

    #[test]
    fn a_voice_note_is_transcribed_when_the_tenant_can_after_the_same_guards() {
        let m = only("audio");
        let can = Facts {
            can_transcribe: true,
            ..facts_of(&m, None, false)
        };
        assert_eq!(decide(&can), Decision::Transcribe);
        for (stopped, why) in [
            (
                Facts {
                    bot_enabled: false,
                    ..can.clone()
                },
                Silence::BotDisabled,
            ),
            (
                Facts {
                    was_subscribed: false,
                    ..can.clone()
                },
                Silence::Unsubscribed,
            ),
            (
                Facts {
                    replies_this_hour: Some(11),
                    ..can.clone()
                },
                Silence::HourlyLimit,
            ),
        ] {
            assert_eq!(decide(&stopped), Decision::Silent(why));
        }
        // Only a voice note is transcribed.
        let image = only("image");
        let bare = crate::webhook::InboundMessage {
            text: None,
            ..image.clone()
        };
        let f = Facts {
            can_transcribe: true,
            ..facts_of(&bare, None, false)
        };
        assert_eq!(decide(&f), Decision::AskForText(Unreadable::Media));
    }

    #[test]
    fn a_bare_picture_goes_to_the_model_when_it_may_see_pictures_and_other_media_never() {
        for name in ["image", "video", "document", "sticker"] {
            let m = only(name);
            let bare = crate::webhook::InboundMessage {
                text: None,
                ..m.clone()
            };
            let may = Facts {
                can_see_pictures: true,
                ..facts_of(&bare, None, true)
            };
            let expected = match name {
                "image" => Decision::AskAi,
                "sticker" => Decision::Silent(Silence::NotAnswerable),
                _ => Decision::AskForText(Unreadable::Media),
            };
            assert_eq!(decide(&may), expected, "{name}");
            let may_not = Facts {
                can_see_pictures: false,
                ..may.clone()
            };
            if name != "sticker" {
                assert_eq!(
                    decide(&may_not),
                    Decision::AskForText(Unreadable::Media),
                    "{name}"
                );
            }
        }
        // A caption is answered as text: the FAQ first, even when the model may see.
        let m = only("image");
        let e = entry();
        let f = Facts {
            can_see_pictures: true,
            ..facts_of(&m, Some(&e), true)
        };
        assert_eq!(decide(&f), Decision::Answer(&e));
    }

    #[test]
    fn a_sticker_gets_nothing() {
        let m = only("sticker");
        let (with_help, without) = both_ways(&m);
        assert_eq!(with_help, Decision::Silent(Silence::NotAnswerable));
        assert_eq!(without, Decision::Silent(Silence::NotAnswerable));
    }

    #[test]
    fn a_location_is_answered_as_its_name_and_address_or_asks_for_words() {
        let m = only("location");
        assert_eq!(
            words_of(&m.message_type, m.text.as_deref()),
            Some("Sarit Centre, Karuna Rd, Westlands, Nairobi")
        );
        assert_eq!(decide(&facts_of(&m, None, true)), Decision::AskAi);
        assert_eq!(
            decide(&facts_of(&m, None, false)),
            Decision::Escalate(Handover::Unanswered)
        );
        let pin = crate::webhook::InboundMessage {
            text: None,
            ..m.clone()
        };
        assert_eq!(
            decide(&facts_of(&pin, None, false)),
            Decision::AskForText(Unreadable::Shared)
        );
    }

    #[test]
    fn a_contact_card_asks_for_words() {
        let m = only("contacts");
        let (with_help, without) = both_ways(&m);
        assert_eq!(with_help, Decision::AskForText(Unreadable::Shared));
        assert_eq!(without, Decision::AskForText(Unreadable::Shared));
    }

    #[test]
    fn an_order_is_handed_to_a_person_even_when_the_faq_or_ai_could_answer_its_note() {
        let m = only("order");
        let (with_help, without) = both_ways(&m);
        assert_eq!(with_help, Decision::Escalate(Handover::Order));
        assert_eq!(without, Decision::Escalate(Handover::Order));
        assert_eq!(
            said_in(&m.message_type, m.text.as_deref()),
            Some("Please deliver after 5pm")
        );
        assert_eq!(words_of(&m.message_type, m.text.as_deref()), None);
        let notice = escalation_notice("Kassangas", "254700", None, Some("note"), Handover::Order);
        assert!(notice.contains("order"), "{notice}");
        assert!(handover_reply("Kassangas", Handover::Order).contains("order"));
    }

    #[test]
    fn system_unsupported_unknown_welcome_and_ephemeral_messages_get_nothing() {
        let mut all = Vec::new();
        for name in [
            "system",
            "unsupported_with_errors",
            "unknown_type_and_unknown_fields",
        ] {
            all.push(only(name));
        }
        for kind in ["request_welcome", "ephemeral"] {
            let body = format!(
                r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{
                    "metadata":{{"phone_number_id":"111"}},
                    "messages":[{{"id":"wamid.X","from":"2547","timestamp":"1","type":"{kind}"}}]}}}}]}}]}}"#
            );
            all.extend(inbound(body.as_bytes()));
        }
        assert_eq!(all.len(), 5);
        for m in &all {
            let (with_help, without) = both_ways(m);
            assert_eq!(
                with_help,
                Decision::Silent(Silence::NotAnswerable),
                "{}",
                m.message_type
            );
            assert_eq!(
                without,
                Decision::Silent(Silence::NotAnswerable),
                "{}",
                m.message_type
            );
            assert!(!may_reply(true, &m.message_type, m.text.as_deref(), None));
        }
    }

    #[test]
    fn the_template_parameters_name_business_customer_and_message_without_line_breaks() {
        let long = format!("line one\n\tline    two {}", "x".repeat(400));
        let p = escalation_template_parameters(
            "Kassangas",
            "254711000111",
            Some("Wanjiku"),
            Some(&long),
            "text",
        );
        assert_eq!(p[0], "Kassangas");
        assert_eq!(p[1], "Wanjiku (+254711000111)");
        assert!(p[2].starts_with("line one line two x"), "{}", p[2]);
        assert_eq!(p[2].chars().count(), 201, "200 characters and an ellipsis");
        assert!(p
            .iter()
            .all(|x| !x.contains('\n') && !x.contains('\t') && !x.contains("  ")));
        let order = escalation_template_parameters("K", "2547", Some("  "), None, "order");
        assert_eq!(order[1], "+2547");
        assert_eq!(order[2], "(an order from the catalogue)");
    }

    #[test]
    fn the_prompt_carries_the_tenants_prompt_tone_facts_and_history_in_order() {
        let e = entry();
        let history = vec![
            Turn {
                direction: "incoming".into(),
                text: "hi".into(),
            },
            Turn {
                direction: "outgoing".into(),
                text: "Karibu".into(),
            },
        ];
        let msgs = build_prompt(
            "Kassangas",
            Some("Sell guitars."),
            Some("warm"),
            &[&e],
            &history,
            "bei ya guitar?",
        );
        assert_eq!(msgs.len(), 4);
        assert!(
            msgs[0].content.contains("Sell guitars.") && msgs[0].content.contains("Tone: warm")
        );
        assert!(msgs[0].content.contains("Mon-Sat 9-6"));
        assert!(msgs[0].content.contains("customer's language"));
        assert_eq!(msgs[2].role, Role::Assistant);
        assert_eq!(msgs[3].content, "bei ya guitar?");
    }
}
