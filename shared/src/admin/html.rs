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

/// The overview of one business.
pub fn overview_page(csrf: &str, o: &super::overview::Overview) -> String {
    let name = o.business_name.as_deref().unwrap_or("Your business");
    let assistants = if o.tenants.is_empty() {
        "<p class=\"muted\">No WhatsApp number is set up yet.</p>".to_owned()
    } else {
        let items: String = o
            .tenants
            .iter()
            .map(|t| {
                format!(
                    "<li>{} <span class=\"muted\">({})</span></li>",
                    escape(&t.name),
                    if t.is_active { "active" } else { "paused" }
                )
            })
            .collect();
        format!("<h2>Numbers</h2><ul>{items}</ul>")
    };
    page(
        name,
        &format!(
            "<h1>{}</h1><h2>Today</h2><ul class=\"cards\">\
<li><b>{}</b>messages received</li><li><b>{}</b>replies sent</li></ul>{assistants}{}",
            escape(name),
            o.received_today,
            o.replies_today,
            logout_form(csrf)
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
