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
}

/// What to do before any reply is written.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision<'a> {
    Silent(Silence),
    /// Confirm STOP (the last message the customer gets) or START.
    Control(ControlIntent),
    Answer(&'a EntryRecord),
    AskAi,
    /// Hand over to a person: the customer asked, or nothing else can answer.
    Escalate {
        asked: bool,
    },
    /// Media without words: ask for text, no escalation.
    AskForText,
}

/// Types that carry nothing to answer (a reaction is an emoji on our message).
fn is_unanswerable_type(t: &str) -> bool {
    matches!(
        t,
        "reaction" | "system" | "unsupported" | "unknown" | "request_welcome" | "ephemeral"
    )
}

/// The decision for one claimed message.
pub fn decide<'a>(f: &Facts<'a>) -> Decision<'a> {
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
    match f.intent {
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
    let text = f.text.map(str::trim).filter(|t| !t.is_empty());
    let Some(_) = text else {
        if is_unanswerable_type(f.message_type) {
            return Decision::Silent(Silence::NotAnswerable);
        }
        return Decision::AskForText;
    };
    if f.intent == Some(ControlIntent::Human) {
        return Decision::Escalate { asked: true };
    }
    if let Some(entry) = f.faq {
        return Decision::Answer(entry);
    }
    if f.ai_available {
        return Decision::AskAi;
    }
    Decision::Escalate { asked: false }
}

/// Whether a message may be counted against the hourly cap (it may get a reply).
pub fn may_reply(bot_enabled: bool, intent: Option<ControlIntent>) -> bool {
    bot_enabled
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

pub fn handover_reply(business: &str) -> String {
    format!(
        "Thanks for your message! A member of the {business} team will get back to you shortly.\n\
         Asante! Mmoja wa timu yetu atakujibu hivi punde."
    )
}

/// The owner's once-a-month notice that usage passed 80 % of a monthly budget.
pub fn budget_notice(business: &str, percent: i64) -> String {
    format!(
        "{business}: your assistant has used {percent}% of this month's budget. \
         At 100% AI answers stop until next month (FAQ answers and hand-overs go on). \
         Ask your Alphadome operator to raise the budget if you need more."
    )
}

pub fn ask_for_text_reply() -> String {
    "Thanks! I can only read text for now - please type your question and I'll help. \
     / Asante! Tafadhali andika swali lako."
        .to_owned()
}

/// The notice to the business's escalation phone: who needs a person and what they wrote.
/// This goes only to the business owner over WhatsApp, never to a log.
pub fn escalation_notice(
    business: &str,
    customer: &str,
    name: Option<&str>,
    text: Option<&str>,
    asked: bool,
) -> String {
    let who = match name {
        Some(n) => format!("{n} (+{customer})"),
        None => format!("+{customer}"),
    };
    let why = if asked {
        "asked to talk to a person"
    } else {
        "asked something the bot could not answer"
    };
    let said = text
        .map(|t| format!("\nTheir message: \"{}\"", truncate(t, 500)))
        .unwrap_or_default();
    format!("[{business} assistant] {who} {why}. Please reply to them on WhatsApp.{said}")
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
        assert_eq!(decide(&f), Decision::Escalate { asked: false });
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
        assert_eq!(decide(&f), Decision::Escalate { asked: true });
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
        assert_eq!(decide(&image), Decision::AskForText);
        let reaction = Facts {
            text: None,
            message_type: "reaction",
            ..facts(None)
        };
        assert_eq!(decide(&reaction), Decision::Silent(Silence::NotAnswerable));
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
