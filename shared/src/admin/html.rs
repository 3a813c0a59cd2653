//! The dashboard's pages: plain server-rendered HTML, readable on a 360 px phone, no script,
//! one stylesheet served by us. Every value that came from a customer, an owner or a token
//! goes through [`escape`].

/// HTML-escapes text for element content and double-quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
    out
}

/// The stylesheet (`/admin/assets/admin.css`): the CSP allows no inline style.
pub const STYLESHEET: &str = "\
*{box-sizing:border-box}\
body{margin:0;font:16px/1.5 system-ui,-apple-system,sans-serif;color:#1b1b1b;background:#f6f6f4}\
main{max-width:40rem;margin:0 auto;padding:1rem}\
h1{font-size:1.4rem;margin:.5rem 0 1rem;overflow-wrap:anywhere}\
form{display:grid;gap:.6rem;margin:1rem 0}\
label{display:grid;gap:.2rem;font-weight:600}\
input,textarea{width:100%;font:inherit;padding:.6rem;border:1px solid #999;border-radius:.4rem}\
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

/// A whole page around `body` (already escaped where needed).
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{title} · Alphadome</title>\
<link rel=\"stylesheet\" href=\"/admin/assets/admin.css\"></head>\
<body><main>{body}</main></body></html>\n",
        title = escape(title),
    )
}

/// The hidden CSRF field of every form.
pub fn csrf_field(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf_token\" value=\"{}\">",
        escape(token)
    )
}

/// The sign-in page. `password` chooses Supabase's e-mail and password form; otherwise the
/// development form takes a pasted access token.
pub fn login_page(csrf: &str, password: bool, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    let form = if password {
        format!(
            "<form method=\"post\" action=\"/admin/login\">{csrf}\
<label>E-mail<input type=\"email\" name=\"email\" autocomplete=\"username\" required></label>\
<label>Password<input type=\"password\" name=\"password\" autocomplete=\"current-password\" required></label>\
<button type=\"submit\">Sign in</button></form>",
            csrf = csrf_field(csrf)
        )
    } else {
        format!(
            "<p class=\"muted\">Local development: paste a token from \
<code>alphadome admin token --tenant T</code>.</p>\
<form method=\"post\" action=\"/admin/session\">{csrf}\
<label>Access token<textarea name=\"access_token\" rows=\"5\" required></textarea></label>\
<button type=\"submit\">Sign in</button></form>",
            csrf = csrf_field(csrf)
        )
    };
    page(
        "Sign in",
        &format!("<h1>Sign in to your assistant</h1>{error}{form}"),
    )
}

fn logout_form(csrf: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/admin/logout\">{}<button type=\"submit\">Sign out</button></form>",
        csrf_field(csrf)
    )
}

/// A signed-in user whose token names no business.
pub fn no_brand_page(csrf: &str, email: Option<&str>) -> String {
    let who = email
        .map(|e| format!(" as {}", escape(e)))
        .unwrap_or_default();
    page(
        "No business yet",
        &format!(
            "<h1>Welcome</h1><p>You are signed in{who}, but your account is not linked to a \
business yet. Please ask the Alphadome team to link it; there is nothing to show until then.</p>{}",
            logout_form(csrf)
        ),
    )
}

/// The overview of one business; `banner` (already HTML) goes above today's figures.
pub fn overview_page(csrf: &str, o: &super::overview::Overview, banner: &str) -> String {
    let name = o.business_name.as_deref().unwrap_or("Your business");
    let assistants = if o.tenants.is_empty() {
        "<p class=\"muted\">No WhatsApp number is set up yet.</p>".to_owned()
    } else {
        let items: String = o
            .tenants
            .iter()
            .map(|t| {
                format!(
                    "<li>{} <span class=\"muted\">({})</span><br>Assistant: <b>{}</b> {}</li>",
                    escape(&t.name),
                    if t.is_active { "active" } else { "paused" },
                    if t.assistant_enabled { "on" } else { "off" },
                    assistant_switch(csrf, t.id, !t.assistant_enabled)
                )
            })
            .collect();
        format!("<h2>Numbers</h2><ul class=\"list\">{items}</ul>")
    };
    page(
        name,
        &format!(
            "{}<h1>{}</h1>{banner}<h2>Today</h2><ul class=\"cards\">\
<li><b>{}</b>messages received</li><li><b>{}</b>replies sent</li></ul>{assistants}{}",
            nav(),
            escape(name),
            o.received_today,
            o.replies_today,
            logout_form(csrf)
        ),
    )
}

/// The dashboard's navigation.
fn nav() -> &'static str {
    "<nav><a href=\"/admin\">Overview</a><a href=\"/admin/conversations\">Conversations</a><a href=\"/admin/usage\">Usage</a></nav>"
}

/// The 30-day chart: one bar a day for messages received, the part answered from the FAQ
/// darker. Plain SVG drawn here (presentation attributes, no script, no inline CSS), so it
/// renders under the dashboard's Content-Security-Policy and scales to a phone's width.
pub fn usage_chart(days: &[super::usage::DayUsage]) -> String {
    const W: usize = 300;
    const H: i64 = 100;
    let max = days.iter().map(|d| d.received).max().unwrap_or(0).max(1);
    let slot = W / days.len().max(1);
    let bar = slot.saturating_sub(2).max(1);
    let mut bars = String::new();
    for (i, d) in days.iter().enumerate() {
        let x = i * slot + 1;
        let h = d.received * H / max;
        let f = d.faq.min(d.received) * H / max;
        let day = d
            .day
            .map(|d| d.format("%d %b").to_string())
            .unwrap_or_default();
        bars.push_str(&format!(
            "<g><title>{day}: {} received, {} from the FAQ, {} by the AI, {} handed over</title>\
<rect x=\"{x}\" y=\"{}\" width=\"{bar}\" height=\"{h}\" fill=\"#9cc3e6\"/>\
<rect x=\"{x}\" y=\"{}\" width=\"{bar}\" height=\"{f}\" fill=\"#2f6fa8\"/></g>",
            d.received,
            d.faq,
            d.ai,
            d.handovers,
            H - h,
            H - f,
        ));
    }
    let first = days
        .first()
        .and_then(|d| d.day)
        .map(|d| d.format("%d %b").to_string())
        .unwrap_or_default();
    let last = days
        .last()
        .and_then(|d| d.day)
        .map(|d| d.format("%d %b").to_string())
        .unwrap_or_default();
    format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {}\" width=\"100%\" role=\"img\" \
aria-label=\"Messages received per day, last 30 days (most: {max})\">{bars}\
<text x=\"0\" y=\"{}\" font-size=\"9\" fill=\"#555\">{first}</text>\
<text x=\"{W}\" y=\"{}\" font-size=\"9\" fill=\"#555\" text-anchor=\"end\">{last}</text></svg>",
        H + 14,
        H + 12,
        H + 12,
    )
}

/// The warning shown on the overview and the usage page once 80 % of a budget is used.
pub fn budget_banner(u: &super::usage::Usage) -> String {
    match u.budget_percent() {
        Some(p) if p >= 100 => format!(
            "<p class=\"warning\">This month's budget is used up ({p}%): the AI has stopped; \
FAQ answers and hand-overs go on. It resets on the 1st, or ask the Alphadome team to raise it.</p>"
        ),
        Some(p) if p >= 80 => format!(
            "<p class=\"warning\">{p}% of this month's budget is used. At 100% the AI stops \
(FAQ answers and hand-overs go on).</p>"
        ),
        _ => String::new(),
    }
}

/// The usage page: the chart, this month against the budgets, the days in a table.
pub fn usage_page(u: &super::usage::Usage) -> String {
    let budget = |used: i64, limit: Option<i64>, what: &str| match limit {
        Some(l) => format!("<li><b>{used} / {l}</b>{what} this month (budget)</li>"),
        None => format!("<li><b>{used}</b>{what} this month (no budget)</li>"),
    };
    let banner = budget_banner(u);
    let rows: String = u
        .days
        .iter()
        .rev()
        .filter(|d| d.received > 0 || d.ai_tokens > 0)
        .map(|d| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                d.day
                    .map(|d| d.format("%d %b").to_string())
                    .unwrap_or_default(),
                d.received,
                d.faq,
                d.ai,
                d.handovers,
                d.ai_tokens
            )
        })
        .collect();
    let table = if rows.is_empty() {
        "<p class=\"muted\">No messages in the last 30 days.</p>".to_owned()
    } else {
        format!(
            "<table><thead><tr><th>Day</th><th>In</th><th>FAQ</th><th>AI</th><th>Hand-overs</th>\
<th>AI tokens</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    page(
        "Usage",
        &format!(
            "{}<h1>Usage</h1>{banner}<h2>Last 30 days</h2>{}\
<p class=\"muted\">Messages received per day; the darker part was answered from your FAQ.</p>\
<h2>This month</h2><ul class=\"cards\"><li><b>{}</b>messages received</li>\
<li><b>{}</b>answered from the FAQ</li><li><b>{}</b>answered by the AI</li>\
<li><b>{}</b>handed over</li><li><b>{}</b>failed sends</li>{}{}</ul><h2>By day</h2>{table}",
            nav(),
            usage_chart(&u.days),
            u.month.received,
            u.month.faq,
            u.month.ai,
            u.month.handovers,
            u.month.failed_sends,
            budget(u.month_messages_out, u.message_budget, "messages sent"),
            budget(u.month.ai_tokens, u.ai_budget, "AI tokens"),
        ),
    )
}

/// The form that switches one number's assistant to `enable`.
fn assistant_switch(csrf: &str, tenant: uuid::Uuid, enable: bool) -> String {
    format!(
        "<form class=\"inline\" method=\"post\" action=\"/admin/assistant\">{}\
<input type=\"hidden\" name=\"tenant_id\" value=\"{tenant}\">\
<input type=\"hidden\" name=\"enabled\" value=\"{}\">\
<button type=\"submit\">{}</button></form>",
        csrf_field(csrf),
        if enable { "on" } else { "off" },
        if enable {
            "Switch the assistant on"
        } else {
            "Switch the assistant off"
        }
    )
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

fn short(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

fn when(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%d %b %H:%M UTC").to_string()
}

/// The conversations list: customers by latest message, a search box, the next page.
pub fn conversations_page(q: &str, page_of: &super::conversations::CustomerPage) -> String {
    let items: String = page_of
        .customers
        .iter()
        .map(|c| {
            let who = c.name.as_deref().filter(|n| !n.trim().is_empty()).unwrap_or("Customer");
            let number = c.phone.as_deref().unwrap_or("");
            let last = match c.last_text.as_deref() {
                Some(t) => short(t, 90),
                None => format!("({})", c.last_type.as_deref().unwrap_or("message")),
            };
            let arrow = if c.last_direction == "outgoing" { "You: " } else { "" };
            let paused = if c.paused {
                " <span class=\"badge\">assistant paused</span>"
            } else {
                ""
            };
            format!(
                "<li><a href=\"/admin/conversations/{id}\"><b>{who}</b> <span class=\"muted\">{number}</span>{paused}\
<span class=\"meta\">{arrow}{last}</span><span class=\"meta\">{at}</span></a></li>",
                id = c.user_id,
                who = escape(who),
                number = escape(number),
                arrow = arrow,
                last = escape(&last),
                at = when(c.last_at),
            )
        })
        .collect();
    let list = if items.is_empty() {
        if q.is_empty() {
            "<p class=\"muted\">No conversations yet.</p>".to_owned()
        } else {
            "<p class=\"muted\">No customer matches that search.</p>".to_owned()
        }
    } else {
        format!("<ul class=\"list\">{items}</ul>")
    };
    let more = match &page_of.next {
        Some(next) => {
            let q = if q.is_empty() {
                String::new()
            } else {
                format!("&amp;q={}", url_encode(q))
            };
            format!(
                "<p><a href=\"/admin/conversations?after={}{q}\">Older conversations</a></p>",
                url_encode(&next.encode())
            )
        }
        None => String::new(),
    };
    page(
        "Conversations",
        &format!(
            "{}<h1>Conversations</h1>\
<form class=\"search\" method=\"get\" action=\"/admin/conversations\" role=\"search\">\
<input type=\"search\" name=\"q\" value=\"{}\" placeholder=\"Name or last digits\" aria-label=\"Search\">\
<button type=\"submit\">Search</button></form>{list}{more}",
            nav(),
            escape(q)
        ),
    )
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

fn source_label(source: &str) -> &'static str {
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
fn delivery(m: &super::conversations::MessageLine) -> String {
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
        format!("failed: {}", escape(&reason))
    } else {
        escape(status)
    }
}

/// One customer's conversation, the reply box and the assistant's state for them.
pub fn transcript_page(
    csrf: &str,
    customer: &super::conversations::Customer,
    messages: &[super::conversations::MessageLine],
    flash: Flash,
    can_act: bool,
) -> String {
    let now = chrono::Utc::now();
    let who = customer
        .name
        .as_deref()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or("Customer");
    let items: String = messages
        .iter()
        .map(|m| {
            let text = match m.text.as_deref() {
                Some(t) => escape(t),
                None => format!(
                    "({})",
                    escape(m.message_type.as_deref().unwrap_or("message"))
                ),
            };
            if m.direction == "outgoing" {
                format!(
                    "<li class=\"out\">{text}<span class=\"meta\">{} · {} · {}</span></li>",
                    source_label(m.reply_source.as_deref().unwrap_or("")),
                    delivery(m),
                    when(m.at)
                )
            } else {
                format!(
                    "<li class=\"in\">{text}<span class=\"meta\">{}</span></li>",
                    when(m.at)
                )
            }
        })
        .collect();
    let flash = match flash {
        Flash::None => String::new(),
        Flash::Sent => "<p class=\"ok\" role=\"status\">Sent. The assistant stays quiet with this customer until you resume it.</p>".into(),
        Flash::Resumed => "<p class=\"ok\" role=\"status\">The assistant answers this customer again.</p>".into(),
        Flash::WindowClosed => "<p class=\"error\" role=\"alert\">Not sent: the 24-hour window is closed. WhatsApp lets a business write freely only within 24 hours of the customer's last message. You can reply as soon as they write again.</p>".into(),
        Flash::SendFailed => "<p class=\"error\" role=\"alert\">Not sent: WhatsApp did not accept the message. Please try again in a minute.</p>".into(),
        Flash::TokenProblem => "<p class=\"error\" role=\"alert\">Not sent: this number's WhatsApp token needs replacing. Please contact the Alphadome team.</p>".into(),
        Flash::BadText => "<p class=\"error\" role=\"alert\">Not sent: write a message of up to 4,096 characters.</p>".into(),
        Flash::Unavailable => "<p class=\"error\" role=\"alert\">Replying is unavailable right now. Please try again later.</p>".into(),
    };
    let state = if !customer.assistant_enabled {
        "<p class=\"notice\">The assistant is switched off for this number (see the overview).</p>"
            .to_owned()
    } else if customer.paused(now) {
        format!(
            "<p class=\"notice\">The assistant is paused for this customer.</p>\
<form method=\"post\" action=\"/admin/conversations/{}/resume\">{}<button type=\"submit\">Resume assistant</button></form>",
            customer.user_id,
            csrf_field(csrf)
        )
    } else {
        "<p class=\"muted\">The assistant answers this customer.</p>".to_owned()
    };
    let reply = if !can_act {
        String::new()
    } else if customer.window_open(now) {
        format!(
            "<form method=\"post\" action=\"/admin/conversations/{}/reply\">{}\
<label>Reply as a person<textarea name=\"text\" rows=\"3\" maxlength=\"4096\" required></textarea></label>\
<button type=\"submit\">Send</button></form>",
            customer.user_id,
            csrf_field(csrf)
        )
    } else {
        "<p class=\"notice\">The 24-hour window is closed: you can reply when the customer writes again.</p>".to_owned()
    };
    page(
        who,
        &format!(
            "{}<h1>{}</h1><p class=\"muted\">{} · {}</p>{flash}<ul class=\"msgs\">{items}</ul>{state}{reply}",
            nav(),
            escape(who),
            escape(customer.phone.as_deref().unwrap_or("")),
            escape(&customer.business),
        ),
    )
}

/// A page for an id that is not the owner's (or does not exist): the same answer for both.
pub fn not_found_page() -> String {
    page(
        "Not found",
        &format!(
            "{}<h1>Not found</h1><p>There is nothing here. <a href=\"/admin/conversations\">Back to conversations</a></p>",
            nav()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_markup_and_attribute_quotes() {
        assert_eq!(
            escape(r#"<script>alert('x')</script> & "q""#),
            "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(escape("Kassangas Music Shop"), "Kassangas Music Shop");
    }

    #[test]
    fn the_development_sign_in_page_posts_a_token_with_a_csrf_field() {
        let html = login_page("tok\"en", false, Some("<b>"));
        assert!(html.contains("action=\"/admin/session\""));
        assert!(html.contains("name=\"csrf_token\" value=\"tok&quot;en\""));
        assert!(html.contains("&lt;b&gt;"));
        assert!(!html.contains("<script"));
    }
}
