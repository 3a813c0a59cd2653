//! The dashboard's pages: server-rendered askama templates (`shared/templates/admin/`),
//! readable on a 360 px phone, no script, one stylesheet served by us. Askama escapes every
//! value it prints into HTML, so a customer's `<script>` shows as text; nothing here builds
//! markup by hand.

use askama::Template;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::conversations::{Customer, CustomerPage, MessageLine};
use super::overview::Overview;
use super::usage::{DayUsage, Usage};

/// The stylesheet (`/admin/assets/admin.css`): the CSP allows no inline style.
pub const STYLESHEET: &str = "\
*{box-sizing:border-box}\
body{margin:0;font:16px/1.5 system-ui,-apple-system,sans-serif;color:#1b1b1b;background:#f6f6f4}\
main{max-width:40rem;margin:0 auto;padding:1rem}\
h1{font-size:1.4rem;margin:.5rem 0 1rem;overflow-wrap:anywhere}\
form{display:grid;gap:.6rem;margin:1rem 0}\
label{display:grid;gap:.2rem;font-weight:600}\
input,textarea,select{width:100%;max-width:100%;font:inherit;padding:.6rem;border:1px solid #999;border-radius:.4rem;background:#fff}\
.check{display:flex;gap:.5rem;align-items:center;font-weight:400}\
.check input{width:auto}\
.answer{white-space:pre-wrap;overflow-wrap:anywhere;margin:.4rem 0}\
.danger{background:#b00020}\
code{overflow-wrap:anywhere}\
button{font:inherit;padding:.7rem 1rem;border:0;border-radius:.4rem;background:#135e3a;color:#fff}\
.error{background:#fde8e8;border-left:4px solid #b00020;padding:.6rem}\
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(9rem,1fr));gap:.6rem;padding:0;list-style:none}\
.cards li{background:#fff;border-radius:.5rem;padding:.8rem}\
.cards b{display:block;font-size:1.6rem}\
.muted{color:#555}\
nav{display:flex;flex-wrap:wrap;gap:.8rem;margin:.2rem 0 .6rem}\
a{color:#135e3a}\
.inline{display:inline;margin:0}\
.inline button{padding:.3rem .7rem;font-size:.9rem}\
.list{list-style:none;padding:0;margin:0}\
.list li{background:#fff;border-radius:.5rem;padding:.7rem;margin:.4rem 0;overflow-wrap:anywhere}\
.list a{display:block;text-decoration:none;color:inherit}\
.msgs{list-style:none;padding:0}\
.msgs li{max-width:85%;border-radius:.6rem;padding:.5rem .7rem;margin:.4rem 0;overflow-wrap:anywhere;white-space:pre-wrap}\
.msgs .in{background:#fff}\
.msgs .out{background:#dcf3e3;margin-left:auto}\
.meta{display:block;font-size:.8rem;color:#555;white-space:normal}\
.badge{display:inline-block;font-size:.75rem;padding:0 .4rem;border-radius:.3rem;background:#eee}\
.notice{background:#fff6d6;border-left:4px solid #b58900;padding:.6rem}\
.ok{background:#e5f5ea;border-left:4px solid #135e3a;padding:.6rem}\
.search{display:flex;gap:.4rem}\
.search input{flex:1}\
.warning{background:#fde8e8;border-left:4px solid #b00020;padding:.6rem}\
.chart{display:block;background:#fff;border-radius:.5rem;padding:.4rem}\
table{width:100%;border-collapse:collapse;font-size:.9rem;background:#fff}\
th,td{padding:.3rem .4rem;text-align:right;border-bottom:1px solid #eee}\
th:first-child,td:first-child{text-align:left}\
";

/// Renders a page. Our templates only print strings and numbers, whose formatting cannot
/// fail; a failure still yields a page rather than a panic.
fn render(page: &impl Template) -> String {
    page.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "rendering a dashboard page failed");
        "<!doctype html><title>Error</title><p>Something went wrong.</p>".to_owned()
    })
}

/// A page of a heading, a few sentences and a link back (errors, refusals).
#[derive(Template)]
#[template(path = "admin/message.html")]
struct MessagePage<'a> {
    title: &'a str,
    heading: &'a str,
    paragraphs: &'a [&'a str],
    link: Option<(&'a str, &'a str)>,
    nav: bool,
}

/// A plain page: `heading`, the `paragraphs`, and optionally a link (`href`, label).
pub fn message_page(
    title: &str,
    heading: &str,
    paragraphs: &[&str],
    link: Option<(&str, &str)>,
) -> String {
    render(&MessagePage {
        title,
        heading,
        paragraphs,
        link,
        nav: false,
    })
}

/// A page for an id that is not the owner's (or does not exist): the same answer for both.
pub fn not_found_page() -> String {
    render(&MessagePage {
        title: "Not found",
        heading: "Not found",
        paragraphs: &["There is nothing here."],
        link: Some(("/admin", "Back to the overview")),
        nav: true,
    })
}

/// Which sign-in form the page shows.
pub enum LoginMode {
    /// Supabase: e-mail and password, or a one-time code by e-mail.
    Supabase,
    /// Supabase, a code was sent to this address: the form that takes it.
    Code(String),
    /// Local development: a pasted access token.
    Development,
}

#[derive(Template)]
#[template(path = "admin/login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    mode: LoginMode,
    error: Option<&'a str>,
    notice: Option<&'a str>,
}

/// The sign-in page.
pub fn login_page(
    csrf: &str,
    mode: LoginMode,
    error: Option<&str>,
    notice: Option<&str>,
) -> String {
    render(&LoginPage {
        csrf,
        mode,
        error,
        notice,
    })
}

#[derive(Template)]
#[template(path = "admin/no_brand.html")]
struct NoBrandPage<'a> {
    csrf: &'a str,
    email: Option<&'a str>,
}

/// A signed-in user whose token names no business.
pub fn no_brand_page(csrf: &str, email: Option<&str>) -> String {
    render(&NoBrandPage { csrf, email })
}

#[derive(Template)]
#[template(path = "admin/overview.html")]
struct OverviewPage<'a> {
    csrf: &'a str,
    name: &'a str,
    o: &'a Overview,
    banner: Option<String>,
    warnings: Vec<String>,
}

/// The overview of one business, with the budget warning (if any) and the warnings of its
/// numbers (a token to replace, the hourly cap reached, failed sends today).
pub fn overview_page(csrf: &str, o: &Overview, banner: Option<String>) -> String {
    render(&OverviewPage {
        csrf,
        name: o.business_name.as_deref().unwrap_or("Your business"),
        o,
        banner,
        warnings: o.warnings(),
    })
}

/// The warning shown on the overview and the usage page once 80 % of a budget is used.
pub fn budget_banner(u: &Usage) -> Option<String> {
    match u.budget_percent() {
        Some(p) if p >= 100 => Some(format!(
            "This month's budget is used up ({p}%): the AI has stopped; FAQ answers and \
hand-overs go on. It resets on the 1st, or ask the Alphadome team to raise it."
        )),
        Some(p) if p >= 80 => Some(format!(
            "{p}% of this month's budget is used. At 100% the AI stops (FAQ answers and \
hand-overs go on)."
        )),
        _ => None,
    }
}

/// One bar of the usage chart, in the chart's coordinates.
struct Bar {
    label: String,
    x: usize,
    h: i64,
    f: i64,
    received: i64,
    faq: i64,
    ai: i64,
    handovers: i64,
}

/// The 30-day chart: one bar a day for messages received, the part answered from the FAQ
/// darker. Plain SVG (presentation attributes, no script, no inline CSS), so it renders under
/// the dashboard's Content-Security-Policy and scales to a phone's width.
struct Chart {
    width: usize,
    height: i64,
    bar: usize,
    max: i64,
    bars: Vec<Bar>,
    first: String,
    last: String,
}

fn day_label(d: Option<chrono::NaiveDate>) -> String {
    d.map(|d| d.format("%d %b").to_string()).unwrap_or_default()
}

fn chart(days: &[DayUsage]) -> Chart {
    const W: usize = 300;
    const H: i64 = 100;
    let max = days.iter().map(|d| d.received).max().unwrap_or(0).max(1);
    let slot = W / days.len().max(1);
    let bars = days
        .iter()
        .enumerate()
        .map(|(i, d)| Bar {
            label: day_label(d.day),
            x: i * slot + 1,
            h: d.received * H / max,
            f: d.faq.min(d.received) * H / max,
            received: d.received,
            faq: d.faq,
            ai: d.ai,
            handovers: d.handovers,
        })
        .collect();
    Chart {
        width: W,
        height: H,
        bar: slot.saturating_sub(2).max(1),
        max,
        bars,
        first: day_label(days.first().and_then(|d| d.day)),
        last: day_label(days.last().and_then(|d| d.day)),
    }
}

#[derive(Template)]
#[template(path = "admin/usage.html")]
struct UsagePage<'a> {
    u: &'a Usage,
    banner: Option<String>,
    chart: Chart,
    rows: Vec<(String, &'a DayUsage)>,
}

/// The usage page: the chart, this month against the budgets, the days in a table.
pub fn usage_page(u: &Usage) -> String {
    render(&UsagePage {
        u,
        banner: budget_banner(u),
        chart: chart(&u.days),
        rows: u
            .days
            .iter()
            .rev()
            .filter(|d| d.received > 0 || d.ai_tokens > 0)
            .map(|d| (day_label(d.day), d))
            .collect(),
    })
}

/// Percent-encodes a query-string value.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `text` cut at `max` characters, with an ellipsis when cut.
pub fn short(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// A moment as the pages show it.
pub fn when(at: DateTime<Utc>) -> String {
    at.format("%d %b %H:%M UTC").to_string()
}

/// One line of the conversations list, ready to print.
struct CustomerItem {
    id: Uuid,
    who: String,
    number: String,
    paused: bool,
    mine: bool,
    last: String,
    at: String,
}

#[derive(Template)]
#[template(path = "admin/conversations.html")]
struct ConversationsPage<'a> {
    q: &'a str,
    lines: Vec<CustomerItem>,
    next: Option<String>,
}

/// The conversations list: customers by latest message, a search box, the next page.
pub fn conversations_page(q: &str, page_of: &CustomerPage) -> String {
    let lines = page_of
        .customers
        .iter()
        .map(|c| CustomerItem {
            id: c.user_id,
            who: c
                .name
                .as_deref()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or("Customer")
                .to_owned(),
            number: c.phone.clone().unwrap_or_default(),
            paused: c.paused,
            mine: c.last_direction == "outgoing",
            last: match c.last_text.as_deref() {
                Some(t) => short(t, 90),
                None => format!("({})", c.last_type.as_deref().unwrap_or("message")),
            },
            at: when(c.last_at),
        })
        .collect();
    let next = page_of.next.as_ref().map(|next| {
        let q = if q.is_empty() {
            String::new()
        } else {
            format!("&q={}", url_encode(q))
        };
        format!(
            "/admin/conversations?after={}{q}",
            url_encode(&next.encode())
        )
    });
    render(&ConversationsPage { q, lines, next })
}

/// What the transcript page says above the reply box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flash {
    None,
    Sent,
    Resumed,
    WindowClosed,
    SendFailed,
    TokenProblem,
    BadText,
    Unavailable,
}

impl Flash {
    /// The class and sentence of the message, if any.
    fn message(self) -> Option<(&'static str, &'static str, &'static str)> {
        let (class, text) = match self {
            Flash::None => return None,
            Flash::Sent => ("ok", "Sent. The assistant stays quiet with this customer until you resume it."),
            Flash::Resumed => ("ok", "The assistant answers this customer again."),
            Flash::WindowClosed => ("error", "Not sent: the 24-hour window is closed. WhatsApp lets a business write freely only within 24 hours of the customer's last message. You can reply as soon as they write again."),
            Flash::SendFailed => ("error", "Not sent: WhatsApp did not accept the message. Please try again in a minute."),
            Flash::TokenProblem => ("error", "Not sent: this number's WhatsApp token needs replacing (Settings)."),
            Flash::BadText => ("error", "Not sent: write a message of up to 4,096 characters."),
            Flash::Unavailable => ("error", "Replying is unavailable right now. Please try again later."),
        };
        Some((class, if class == "ok" { "status" } else { "alert" }, text))
    }
}

/// How a reply's source is named on the page.
pub fn source_label(source: &str) -> &'static str {
    match source {
        "faq" => "FAQ",
        "canned" => "canned answer",
        "ai" => "AI",
        "fallback" => "fallback",
        "escalation" => "hand-over",
        "person" => "you",
        "welcome" => "welcome",
        "control" => "notice",
        _ => "assistant",
    }
}

/// The status of one outgoing message, with Meta's reason for a failure.
fn delivery(m: &MessageLine) -> String {
    let status = m.status.as_deref().unwrap_or("unknown");
    if status == "failed" {
        let reason = match (m.error_title.as_deref(), m.error_code) {
            (Some(t), Some(c)) => format!("{t} ({c})"),
            (Some(t), None) => t.to_owned(),
            (None, Some(131047)) => "the 24-hour window was closed (131047)".to_owned(),
            (None, Some(131026)) => "the message could not be delivered (131026)".to_owned(),
            (None, Some(c)) => format!("code {c}"),
            (None, None) => "no answer from WhatsApp".to_owned(),
        };
        format!("failed: {reason}")
    } else {
        status.to_owned()
    }
}

struct MessageItem {
    outgoing: bool,
    text: String,
    source: &'static str,
    delivery: String,
    at: String,
}

enum AssistantState {
    Off,
    Paused,
    Answering,
}

enum ReplyBox {
    Open,
    WindowClosed,
    Hidden,
}

#[derive(Template)]
#[template(path = "admin/transcript.html")]
struct TranscriptPage<'a> {
    csrf: &'a str,
    user_id: Uuid,
    who: &'a str,
    number: &'a str,
    business: &'a str,
    flash: Option<(&'static str, &'static str, &'static str)>,
    lines: Vec<MessageItem>,
    state: AssistantState,
    reply: ReplyBox,
}

/// One customer's conversation, the reply box and the assistant's state for them.
pub fn transcript_page(
    csrf: &str,
    customer: &Customer,
    messages: &[MessageLine],
    flash: Flash,
    can_act: bool,
) -> String {
    let now = Utc::now();
    let lines = messages
        .iter()
        .map(|m| MessageItem {
            outgoing: m.direction == "outgoing",
            text: match m.text.as_deref() {
                Some(t) => t.to_owned(),
                None => format!("({})", m.message_type.as_deref().unwrap_or("message")),
            },
            source: source_label(m.reply_source.as_deref().unwrap_or("")),
            delivery: delivery(m),
            at: when(m.at),
        })
        .collect();
    let state = if !customer.assistant_enabled {
        AssistantState::Off
    } else if customer.paused(now) {
        AssistantState::Paused
    } else {
        AssistantState::Answering
    };
    let reply = if !can_act {
        ReplyBox::Hidden
    } else if customer.window_open(now) {
        ReplyBox::Open
    } else {
        ReplyBox::WindowClosed
    };
    render(&TranscriptPage {
        csrf,
        user_id: customer.user_id,
        who: customer
            .name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or("Customer"),
        number: customer.phone.as_deref().unwrap_or(""),
        business: &customer.business,
        flash: flash.message(),
        lines,
        state,
        reply,
    })
}

struct HandoverItem {
    id: Uuid,
    who: String,
    number: String,
    business: String,
    escalated: bool,
    paused: bool,
    last: String,
    since: String,
}

#[derive(Template)]
#[template(path = "admin/handovers.html")]
struct HandoversPage<'a> {
    csrf: &'a str,
    done: bool,
    items: Vec<HandoverItem>,
}

/// Conversations waiting for a person, oldest first, each with "Mark done".
pub fn handovers_page(csrf: &str, items: &[super::handovers::Handover], done: bool) -> String {
    let items = items
        .iter()
        .map(|h| HandoverItem {
            id: h.user_id,
            who: h
                .name
                .as_deref()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or("Customer")
                .to_owned(),
            number: h.phone.clone().unwrap_or_default(),
            business: h.business.clone(),
            escalated: h.escalated,
            paused: h.paused_until.is_some(),
            last: h
                .last_message
                .as_deref()
                .map(|t| short(t, 90))
                .unwrap_or_default(),
            since: h.since.map(when).unwrap_or_else(|| "unknown".into()),
        })
        .collect();
    render(&HandoversPage { csrf, done, items })
}

/// The sentence an owner reads for a reply's source on the "Try it" box.
fn tried_source(source: &str) -> &'static str {
    match source {
        "faq" => "From your FAQ",
        "canned" => "A canned answer",
        "ai" => "Written by the AI",
        "fallback" => "The fallback reply (nothing better was found)",
        "escalation" => "Handed over to a person",
        "control" => "A control reply (STOP, START)",
        "welcome" => "The welcome message",
        "silent" => "No reply",
        _ => "No reply",
    }
}

/// What "Try it" shows.
pub struct TriedAnswer {
    source_label: &'static str,
    question: Option<String>,
    reply: String,
    stopped: Option<String>,
}

impl TriedAnswer {
    pub fn from_ask(a: &crate::responder::AskAnswer) -> Self {
        Self {
            source_label: tried_source(a.source),
            question: a.question.clone(),
            reply: if a.reply.is_empty() {
                "(nothing would be sent)".into()
            } else {
                a.reply.clone()
            },
            stopped: a.stopped_by.map(|s| match s {
                "bot_disabled" => "the assistant is switched off".to_owned(),
                "hourly_limit" => "the hourly cap is reached".to_owned(),
                "tenant_inactive" => "this number is paused by the Alphadome team".to_owned(),
                "no_whatsapp_token" => "the WhatsApp token is missing (Settings)".to_owned(),
                other => other.replace('_', " "),
            }),
        }
    }
}

/// The values of an entry's form fields.
#[derive(Default)]
pub struct EntryFields {
    pub question: String,
    pub answer: String,
    pub category: String,
    pub priority: String,
    pub data_type: String,
}

impl EntryFields {
    fn of(e: &super::knowledge::Entry) -> Self {
        Self {
            question: e.question.clone(),
            answer: e.answer.clone(),
            category: e.category.clone().unwrap_or_default(),
            priority: e.priority.to_string(),
            data_type: e.data_type.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/knowledge.html")]
struct KnowledgePage<'a> {
    csrf: &'a str,
    k: &'a super::knowledge::Knowledge,
    ok: Option<&'a str>,
    error: Option<&'a str>,
    tried: &'a str,
    answer: Option<TriedAnswer>,
    form: EntryFields,
}

impl KnowledgePage<'_> {
    fn short(&self, text: &str, max: usize) -> String {
        short(text, max)
    }
}

/// The knowledge page of one number: "Try it", the entries, add, import.
pub fn knowledge_page(
    csrf: &str,
    k: &super::knowledge::Knowledge,
    ok: Option<&str>,
    error: Option<&str>,
    tried: &str,
    answer: Option<TriedAnswer>,
) -> String {
    render(&KnowledgePage {
        csrf,
        k,
        ok,
        error,
        tried,
        answer,
        form: EntryFields {
            data_type: "faq".into(),
            priority: "0".into(),
            ..Default::default()
        },
    })
}

#[derive(Template)]
#[template(path = "admin/entry.html")]
struct EntryPage<'a> {
    csrf: &'a str,
    e: &'a super::knowledge::Entry,
    form: EntryFields,
    ok: Option<&'a str>,
    error: Option<&'a str>,
}

/// One entry: edit, phrasings, switch off, delete.
pub fn entry_page(
    csrf: &str,
    e: &super::knowledge::Entry,
    ok: Option<&str>,
    error: Option<&str>,
) -> String {
    render(&EntryPage {
        csrf,
        e,
        form: EntryFields::of(e),
        ok,
        error,
    })
}

fn answered_how(source: Option<&str>) -> &'static str {
    match source {
        Some("ai") => "answered by the AI",
        Some("fallback") => "got the fallback reply",
        Some("escalation") => "handed over",
        _ => "not answered",
    }
}

struct UnansweredItem {
    id: Uuid,
    text: String,
    how: &'static str,
    at: String,
}

#[derive(Template)]
#[template(path = "admin/unanswered.html")]
struct UnansweredPage {
    tenant: Uuid,
    items: Vec<UnansweredItem>,
}

/// Customers' messages the FAQ did not answer.
pub fn unanswered_page(tenant: Uuid, items: &[super::knowledge::Unanswered]) -> String {
    render(&UnansweredPage {
        tenant,
        items: items
            .iter()
            .map(|u| UnansweredItem {
                id: u.id,
                text: short(&u.text, 160),
                how: answered_how(u.source.as_deref()),
                at: when(u.at),
            })
            .collect(),
    })
}

#[derive(Template)]
#[template(path = "admin/teach.html")]
struct TeachPage<'a> {
    csrf: &'a str,
    tenant: Uuid,
    text: &'a str,
    how: &'static str,
    at: String,
    form: EntryFields,
    entries: Vec<(Uuid, String)>,
}

/// One unanswered message: add it as a new FAQ, or as another phrasing of an entry.
pub fn teach_page(
    csrf: &str,
    u: &super::knowledge::Unanswered,
    entries: &[super::knowledge::Entry],
) -> String {
    render(&TeachPage {
        csrf,
        tenant: u.tenant_id,
        text: &u.text,
        how: answered_how(u.source.as_deref()),
        at: when(u.at),
        form: EntryFields {
            question: short(&u.text, 1000),
            data_type: "faq".into(),
            priority: "0".into(),
            ..Default::default()
        },
        entries: entries
            .iter()
            .filter(|e| e.is_active)
            .map(|e| (e.id, short(&e.question, 80)))
            .collect(),
    })
}

#[derive(Template)]
#[template(path = "admin/assistant.html")]
struct AssistantPage<'a> {
    csrf: &'a str,
    v: &'a super::settings::SettingsView,
    here: &'static str,
    ok: Option<&'a str>,
    error: Option<&'a str>,
    models: Vec<String>,
    default_model: &'a str,
    current_model: &'a str,
}

/// The Assistant page: on/off, instructions, tone, welcome message, model.
pub fn assistant_page(
    csrf: &str,
    v: &super::settings::SettingsView,
    models: Vec<String>,
    default_model: &str,
    ok: Option<&str>,
    error: Option<&str>,
) -> String {
    render(&AssistantPage {
        csrf,
        v,
        here: "/admin/assistant",
        ok,
        error,
        models,
        default_model,
        current_model: v.s.model.as_deref().unwrap_or(""),
    })
}

#[derive(Template)]
#[template(path = "admin/settings.html")]
struct SettingsPage<'a> {
    csrf: &'a str,
    v: &'a super::settings::SettingsView,
    here: &'static str,
    ok: Option<&'a str>,
    error: Option<&'a str>,
}

/// The Settings page: cap, escalation, switches, the hand-over template, the token.
pub fn settings_page(
    csrf: &str,
    v: &super::settings::SettingsView,
    ok: Option<&str>,
    error: Option<&str>,
) -> String {
    render(&SettingsPage {
        csrf,
        v,
        here: "/admin/settings",
        ok,
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_escape_markup_and_attribute_quotes() {
        let html = login_page("tok\"en", LoginMode::Development, Some("<b>'x'</b>"), None);
        assert!(html.contains("action=\"/admin/session\""));
        assert!(
            html.contains("name=\"csrf_token\" value=\"tok&#34;en\""),
            "{html}"
        );
        assert!(
            html.contains("&#60;b&#62;&#39;x&#39;&#60;/b&#62;"),
            "{html}"
        );
        assert!(!html.contains("<b>"));
        assert!(!html.contains("<script"));
    }
}
