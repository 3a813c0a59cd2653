//! What each command does: parse the operator's input into domain types, call the core,
//! print the outcome (text for people, `--json` for scripts).

use anyhow::{anyhow, Context};
use secrecy::SecretString;
use serde::Serialize;

use crate::secrets_input::read_optional;
use crate::{AdminCommand, Command, FaqCommand, TemplateCommand, TenantCommand};
use alphadome::config::{self, Settings};
use alphadome::crypto::SecretColumn;
use alphadome::domain::{BrandId, PhoneNumber, PhoneNumberId};
use alphadome::keys::KeyProvider;
use alphadome::store::{NewTemplate, NewTenant, Store, TenantSummary};

/// The database URL, or a one-line reason that tells the operator what to set.
pub fn database_url(settings: &Settings) -> anyhow::Result<SecretString> {
    settings.database_url.clone().ok_or_else(|| {
        anyhow!(
            "{} is not set: export {}=postgres://USER@HOST:5432/DBNAME (e.g. postgres://postgres@127.0.0.1:5432/alphadome)",
            config::DATABASE_URL,
            config::DATABASE_URL
        )
    })
}

struct Ctx {
    settings: Settings,
    store: Store,
}

impl Ctx {
    async fn open() -> anyhow::Result<Self> {
        let settings = Settings::from_env()?;
        let store = Store::connect(&database_url(&settings)?, 2).await?;
        Ok(Self { settings, store })
    }

    async fn keys(&self) -> KeyProvider {
        KeyProvider::from_settings(
            &self.settings.key_provider,
            None,
            self.settings.tenant_cache_ttl,
        )
        .await
    }
}

fn print<T: Serialize>(
    json: bool,
    value: &T,
    text: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{}", text(value));
    }
    Ok(())
}

fn describe_tenant(t: &TenantSummary) -> String {
    let yes = |b: bool| if b { "yes" } else { "no" };
    let attention = match &t.attention {
        Some(problem) => format!(
            "\n  ATTENTION:          {problem} since {} ({})",
            t.attention_at
                .map(|a| a.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default(),
            alphadome::store::TenantProblem::advice(problem)
        ),
        None => String::new(),
    };
    let described = format!(
        "{name}\n  id:                 {id}\n  brand:              {brand}\n  phone_number_id:    {pnid}\n  client phone:       {phone}\n  active:             {active}\n  bot enabled:        {bot}\n  ai enabled:         {ai}\n  max replies/hour:   {max}\n  whatsapp token:     {tok}{refresh}\n  own ai key:         {aik}\n  own meta app:       {app}\n  key version:        {kv}\n  knowledge entries:  {faq}",
        name = t.client_name,
        id = t.id,
        brand = t.brand_id,
        pnid = t.phone_number_id,
        phone = alphadome::domain::mask_phone(&t.client_phone),
        active = yes(t.is_active),
        bot = t.is_bot_enabled.map(yes).unwrap_or("-"),
        ai = t.enable_ai_responses.map(yes).unwrap_or("-"),
        max = t.max_messages_per_hour.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
        tok = if t.has_whatsapp_token { "set" } else { "MISSING" },
        refresh = if t.needs_token_refresh { " (EXPIRED: renew with `tenant set-secret`)" } else { "" },
        aik = if t.has_ai_key { "set" } else { "no (platform key)" },
        app = if t.has_app_secret { "yes" } else { "no (platform app)" },
        kv = t.key_version,
        faq = t.faq_entries,
    );
    let template = match (&t.escalation_template_name, &t.escalation_template_language) {
        (Some(name), Some(language)) => format!("\n  hand-over template: {name} ({language})"),
        _ if t.has_escalation_phone => {
            "\n  hand-over template: NONE - WARNING: hand-over notices may not arrive; \
             Meta refuses free text when the owner has not written to the business number in \
             24 hours (set one with `tenant set-escalation-template`)"
                .to_owned()
        }
        _ => "\n  hand-over template: none (no escalation phone)".to_owned(),
    };
    let media = format!(
        "\n  voice notes:        {}\n  pictures to the AI: {}",
        on_off(t.voice_notes_enabled),
        on_off(t.pictures_enabled)
    );
    described + &media + &template + &attention
}

/// A tenant's switch as the operator reads it (`-`: no settings row).
fn on_off(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "on",
        Some(false) => "off",
        None => "-",
    }
}

/// A WhatsApp template language code: `en`, `sw`, `en_US`, `zh_Hant` ...
fn is_language_code(code: &str) -> bool {
    let (lang, region) = code.split_once('_').unwrap_or((code, ""));
    (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && (region.is_empty()
            || ((2..=4).contains(&region.len()) && region.bytes().all(|b| b.is_ascii_alphabetic())))
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Migrate => {
            let settings = Settings::from_env()?;
            alphadome::store::migrate(&database_url(&settings)?).await?;
            println!("database is up to date");
            Ok(())
        }
        Command::Tenant(cmd) => tenant(cmd).await,
        Command::Template(TemplateCommand::Set(args)) => {
            let ctx = Ctx::open().await?;
            let tenant = ctx.store.find_tenant(&args.tenant).await?;
            let prompt = read_prompt(&args.system_prompt_file)?;
            if let Some(model) = args.model.as_deref() {
                let limits = alphadome::responder::policy::AiLimits::for_settings(&ctx.settings);
                if !limits.allows(model, &ctx.settings.openai_model) {
                    anyhow::bail!(
                        "model `{model}` is not on the platform's allowlist ({}, {}); set OPENAI_ALLOWED_MODELS to allow it",
                        ctx.settings.openai_model,
                        limits.allowed_models.join(", ")
                    );
                }
            }
            let id = ctx
                .store
                .set_template(
                    tenant,
                    &NewTemplate {
                        name: args.name.clone(),
                        system_prompt: prompt,
                        tone: args.tone,
                        model: args.model,
                        is_default: args.default,
                    },
                )
                .await?;
            let out = serde_json::json!({"id": id, "tenant_id": tenant, "name": args.name, "default": args.default});
            print(args.json, &out, |_| {
                format!("template `{}` saved for tenant {tenant}", args.name)
            })
        }
        Command::Faq(FaqCommand::Import(args)) => {
            // Parse the whole file before touching the database: a bad row imports nothing.
            let file = alphadome::knowledge_file::read_knowledge(&args.file)?;
            let ctx = Ctx::open().await?;
            let tenant = ctx.store.find_tenant(&args.tenant).await?;
            let outcome = ctx
                .store
                .import_entries_with_phrasings(tenant, &file.entries, &file.phrasings)
                .await?;
            print(args.json, &outcome, |o| {
                let phrasings = if o.phrasings_added > 0 {
                    format!(", {} phrasings added", o.phrasings_added)
                } else {
                    String::new()
                };
                format!(
                    "imported {} entries for tenant {tenant} ({} new, {} updated{phrasings})",
                    o.inserted + o.updated,
                    o.inserted,
                    o.updated
                )
            })
        }
        Command::Ask(args) => {
            let ctx = Ctx::open().await?;
            let tenant = ctx.store.find_tenant(&args.tenant).await?;
            let keys = ctx.keys().await;
            let secrets = alphadome::config::PlatformSecrets {
                openai_api_key: ctx.settings.overrides.openai_api_key.clone(),
                ..Default::default()
            };
            let app = alphadome::app::App::from_parts(
                ctx.settings.clone(),
                secrets,
                ctx.store.clone(),
                keys,
            );
            // Never used: `ask` does not send.
            let responder = app.responder(alphadome::responder::Outbox::DryRun(
                std::sync::Arc::new(|_| {}),
            ));
            let answer = responder
                .ask(tenant, &args.text)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            print(args.json, &answer, |a| {
                let matched = match (&a.faq_id, &a.question) {
                    (Some(id), Some(q)) => format!("\nmatched:  {q} ({id})"),
                    _ => String::new(),
                };
                let stopped = match a.stopped_by {
                    Some(rule) => {
                        format!("\nstopped:  {rule} (right now the assistant would stay silent)")
                    }
                    None => String::new(),
                };
                format!(
                    "source:   {}{matched}\nreply:    {}{stopped}",
                    a.source, a.reply
                )
            })
        }
        Command::Serve(args) => serve(args).await,
        Command::Admin(AdminCommand::Token(args)) => admin_token(args).await,
        Command::Demo => alphadome_cli::demo::run_demo(&mut std::io::stdout()).await,
        Command::Simulate(a) => {
            alphadome_cli::simulate::run(alphadome_cli::simulate::Simulation {
                tenant: a.tenant,
                url: a.url,
                from: a.from,
                text: a.text,
            })
            .await
        }
        Command::Loadtest(a) => loadtest(a).await,
        Command::Soak(a) => soak(a).await,
        Command::Usage(a) => usage(a).await,
        Command::Faq(FaqCommand::Expand(args)) => {
            let ctx = Ctx::open().await?;
            let tenant = ctx.store.find_tenant(&args.tenant).await?;
            let keys = ctx.keys().await;
            let secrets = alphadome::config::PlatformSecrets {
                openai_api_key: ctx.settings.overrides.openai_api_key.clone(),
                ..Default::default()
            };
            let app = alphadome::app::App::from_parts(
                ctx.settings.clone(),
                secrets,
                ctx.store.clone(),
                keys,
            );
            let report = alphadome::phrasings::expand_phrasings(&app, tenant, args.dry_run)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            print(args.json, &report, |r| {
                let mut s = String::new();
                for e in &r.entries {
                    match &e.skipped {
                        Some(why) => s.push_str(&format!("skipped  {}: {why}\n", e.question)),
                        None => {
                            s.push_str(&format!("+{:<3}     {}\n", e.added.len(), e.question));
                            for p in &e.added {
                                s.push_str(&format!("           {p}\n"));
                            }
                        }
                    }
                }
                let verb = if r.dry_run { "would add" } else { "added" };
                s.push_str(&format!(
                    "{verb} {} phrasings to {} entries with {} ({} skipped)",
                    r.added,
                    r.entries.len() - r.skipped,
                    r.model,
                    r.skipped
                ));
                s
            })
        }
        Command::Faq(FaqCommand::List(args)) => {
            let ctx = Ctx::open().await?;
            let tenant = ctx.store.find_tenant(&args.tenant).await?;
            let entries = ctx.store.list_entries(tenant).await?;
            print(args.json, &entries, |entries| {
                let mut s = format!("{} entries\n", entries.len());
                for e in entries {
                    let phrasings = match (e.phrasings, e.generated_phrasings) {
                        (0, _) => String::new(),
                        (n, 0) => format!("  (+{n} phrasings)"),
                        (n, g) => format!("  (+{n} phrasings, {g} generated)"),
                    };
                    s.push_str(&format!(
                        "[{}] {:>4}  {}{}{phrasings}\n      -> {}\n",
                        e.data_type,
                        e.priority,
                        e.question,
                        if e.is_active { "" } else { " (inactive)" },
                        e.answer.replace('\n', " ")
                    ));
                }
                s.trim_end().to_owned()
            })
        }
    }
}

fn read_prompt(path: &std::path::Path) -> anyhow::Result<String> {
    let text = if path == std::path::Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("reading the prompt from stdin")?;
        s
    } else {
        std::fs::read_to_string(path).map_err(|e| {
            anyhow!(
                "cannot read the prompt file {}: {}",
                path.display(),
                e.kind()
            )
        })?
    };
    let text = text.trim().to_owned();
    if text.is_empty() {
        anyhow::bail!("the prompt file {} is empty", path.display());
    }
    Ok(text)
}

async fn tenant(cmd: TenantCommand) -> anyhow::Result<()> {
    match cmd {
        TenantCommand::Add(a) => {
            let new = NewTenant {
                client_name: a.name.trim().to_owned(),
                client_phone: PhoneNumber::parse(&a.client_phone).context("--client-phone")?,
                phone_number_id: PhoneNumberId::parse(&a.phone_number_id)
                    .context("--phone-number-id")?,
                contact_name: a.contact_name,
                brand_id: a
                    .brand_id
                    .as_deref()
                    .map(|b| b.parse::<BrandId>().context("--brand-id"))
                    .transpose()?,
                whatsapp_token: read_optional(&a.whatsapp_token_file, "WhatsApp token")?,
                ai_api_key: read_optional(&a.ai_key_file, "AI key")?,
                meta_app_secret: read_optional(&a.app_secret_file, "Meta app secret")?,
                escalation_phone: a
                    .escalation_phone
                    .as_deref()
                    .map(|p| PhoneNumber::parse(p).context("--escalation-phone"))
                    .transpose()?,
                max_messages_per_hour: match a.max_messages_per_hour {
                    Some(n) if n <= 0 => {
                        anyhow::bail!("--max-messages-per-hour must be at least 1")
                    }
                    other => other,
                },
            };
            if new.client_name.is_empty() {
                anyhow::bail!("--name must not be empty");
            }
            let ctx = Ctx::open().await?;
            let keys = ctx.keys().await;
            let t = ctx.store.create_tenant(&keys, new).await?;
            if t.has_whatsapp_token {
                tracing::info!(tenant_id = %t.id, "tenant onboarded");
            } else {
                eprintln!("note: no WhatsApp token given; the bot cannot reply until `alphadome tenant set-secret {} --whatsapp-token-file F`", t.id);
            }
            print(a.json, &t, describe_tenant)
        }
        TenantCommand::List(f) => {
            let ctx = Ctx::open().await?;
            let tenants = ctx.store.list_tenants().await?;
            let recent = ctx.store.recent_usage(7).await?;
            let of = |t: &TenantSummary| {
                recent
                    .iter()
                    .find(|r| r.tenant_id == t.id)
                    .map(|r| (r.messages, r.ai_tokens))
                    .unwrap_or((0, 0))
            };
            let rows: Vec<serde_json::Value> = tenants
                .iter()
                .map(|t| {
                    let mut v = serde_json::to_value(t).unwrap_or_default();
                    let (messages, tokens) = of(t);
                    if let Some(o) = v.as_object_mut() {
                        o.insert("messages_7d".into(), messages.into());
                        o.insert("ai_tokens_7d".into(), tokens.into());
                    }
                    v
                })
                .collect();
            print(f.json, &rows, |_| {
                let mut s = format!(
                    "{:<36}  {:<18}  {:<6}  {:>7}  {:>8}  {:>10}  {}\n",
                    "id", "phone_number_id", "active", "entries", "msgs 7d", "ai tok 7d", "name"
                );
                for t in &tenants {
                    let (messages, tokens) = of(t);
                    let flag = match (&t.attention, t.needs_token_refresh) {
                        (Some(problem), _) => format!("  [ATTENTION: {problem}]"),
                        (None, true) => "  [ATTENTION: token expired]".to_owned(),
                        (None, false) => String::new(),
                    };
                    s.push_str(&format!(
                        "{:<36}  {:<18}  {:<6}  {:>7}  {:>8}  {:>10}  {}{flag}\n",
                        t.id,
                        t.phone_number_id,
                        if t.is_active { "yes" } else { "no" },
                        t.faq_entries,
                        messages,
                        tokens,
                        t.client_name
                    ));
                }
                s.trim_end().to_owned()
            })
        }
        TenantCommand::Show(r) => {
            let ctx = Ctx::open().await?;
            let id = ctx.store.find_tenant(&r.tenant).await?;
            let t = ctx.store.tenant_summary(id).await?;
            let budget = ctx.store.budget_status(id).await?;
            let failures = ctx.store.recent_failures(id, 5).await?;
            let mut v = serde_json::to_value(&t)?;
            if let Some(o) = v.as_object_mut() {
                o.insert("budget".into(), serde_json::to_value(&budget)?);
                o.insert("recent_failures".into(), serde_json::to_value(&failures)?);
            }
            print(r.json, &v, |_| {
                let mut s = describe_tenant(&t);
                s.push_str(&describe_budget(budget.as_ref()));
                if failures.is_empty() {
                    s.push_str("\n  last failed sends:  none");
                } else {
                    s.push_str("\n  last failed sends:");
                    for f in &failures {
                        s.push_str(&format!(
                            "\n    {}  {:<10}  code {}  {}",
                            f.at.format("%Y-%m-%d %H:%M"),
                            f.reply_source.as_deref().unwrap_or("-"),
                            f.error_code
                                .map(|c| c.to_string())
                                .unwrap_or_else(|| "-".into()),
                            f.error_title.as_deref().unwrap_or("")
                        ));
                    }
                }
                s
            })
        }
        TenantCommand::SetBudget(b) => {
            if b.ai_tokens.is_none() && b.messages.is_none() {
                anyhow::bail!("give --ai-tokens N and/or --messages N (0 removes a limit)");
            }
            if b.ai_tokens.is_some_and(|n| n < 0) || b.messages.is_some_and(|n| n < 0) {
                anyhow::bail!("a budget must be 0 (no limit) or more");
            }
            let ctx = Ctx::open().await?;
            let id = ctx.store.find_tenant(&b.tenant).await?;
            let now = ctx.store.budget_status(id).await?;
            // A flag not given keeps that budget as it is; 0 removes it.
            let pick = |given: Option<i64>, current: Option<i64>| match given {
                Some(0) => None,
                Some(n) => Some(n),
                None => current,
            };
            let ai = pick(b.ai_tokens, now.as_ref().and_then(|s| s.monthly_ai_tokens));
            let msgs = pick(b.messages, now.as_ref().and_then(|s| s.monthly_messages));
            ctx.store.set_budget(id, ai, msgs).await?;
            tracing::info!(tenant_id = %id, ?ai, ?msgs, "monthly budget set");
            let status = ctx.store.budget_status(id).await?;
            let out = serde_json::json!({"tenant_id": id, "budget": status});
            print(b.json, &out, |_| {
                format!("tenant {id}:{}", describe_budget(status.as_ref()))
            })
        }
        TenantCommand::SetMedia(m) => {
            let ctx = Ctx::open().await?;
            let id = ctx.store.find_tenant(&m.tenant).await?;
            ctx.store.set_media(id, m.voice_notes, m.pictures).await?;
            let t = ctx.store.tenant_summary(id).await?;
            tracing::info!(tenant_id = %id, voice_notes = ?t.voice_notes_enabled, pictures = ?t.pictures_enabled, "media switches set");
            let out = serde_json::json!({
                "tenant_id": id,
                "voice_notes_enabled": t.voice_notes_enabled,
                "pictures_enabled": t.pictures_enabled,
            });
            print(m.json, &out, |_| {
                format!(
                    "tenant {id}: voice notes {}, pictures to the AI {}",
                    on_off(t.voice_notes_enabled),
                    on_off(t.pictures_enabled)
                )
            })
        }
        TenantCommand::SetEscalationTemplate(a) => {
            let template = match (&a.name, &a.language, a.clear) {
                (_, _, true) => None,
                (Some(name), Some(language), false) => {
                    let valid_name = !name.is_empty()
                        && name.len() <= 512
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                    if !valid_name {
                        anyhow::bail!(
                            "--name: a template name is lowercase letters, digits and underscores"
                        );
                    }
                    if !is_language_code(language) {
                        anyhow::bail!("--language: a code such as en, en_US or sw");
                    }
                    Some((name.as_str(), language.as_str()))
                }
                _ => anyhow::bail!("give --name and --language, or --clear"),
            };
            let ctx = Ctx::open().await?;
            let id = ctx.store.find_tenant(&a.tenant).await?;
            ctx.store.set_escalation_template(id, template).await?;
            tracing::info!(tenant_id = %id, template = ?template.map(|t| t.0), "escalation template set");
            let out = serde_json::json!({
                "tenant_id": id,
                "escalation_template_name": template.map(|t| t.0),
                "escalation_template_language": template.map(|t| t.1),
            });
            print(a.json, &out, |_| {
                match template {
                Some((name, language)) => format!(
                    "tenant {id}: hand-over notices refused outside the owner's 24-hour window are sent as template {name} ({language})"
                ),
                None => format!(
                    "tenant {id}: no escalation template; hand-over notices may not arrive when the owner has not written in 24 hours"
                ),
            }
            })
        }
        TenantCommand::Enable(r) => set_active(r, true).await,
        TenantCommand::Disable(r) => set_active(r, false).await,
        TenantCommand::RotateKey(r) => {
            let ctx = Ctx::open().await?;
            let keys = ctx.keys().await;
            let id = ctx.store.find_tenant(&r.tenant).await?;
            let version = ctx.store.rotate_tenant_key(&keys, id, r.retire_old).await?;
            let out = serde_json::json!({"tenant_id": id, "key_version": version, "old_versions_retired": r.retire_old});
            print(r.json, &out, |_| {
                format!("tenant {id}: secrets re-encrypted under key version {version}")
            })
        }
        TenantCommand::SetSecret(s) => {
            let updates = [
                (
                    SecretColumn::WhatsappAccessToken,
                    read_optional(&s.whatsapp_token_file, "WhatsApp token")?,
                ),
                (
                    SecretColumn::AiApiKey,
                    read_optional(&s.ai_key_file, "AI key")?,
                ),
                (
                    SecretColumn::MetaAppSecret,
                    read_optional(&s.app_secret_file, "Meta app secret")?,
                ),
            ];
            if updates.iter().all(|(_, v)| v.is_none()) {
                anyhow::bail!(
                    "give at least one of --whatsapp-token-file, --ai-key-file, --app-secret-file"
                );
            }
            let ctx = Ctx::open().await?;
            let keys = ctx.keys().await;
            let id = ctx.store.find_tenant(&s.tenant).await?;
            for (column, value) in updates {
                if let Some(value) = value {
                    ctx.store
                        .set_tenant_secret(&keys, id, column, &value)
                        .await?;
                    println!("tenant {id}: {} replaced", column.as_str());
                }
            }
            Ok(())
        }
        TenantCommand::ImportLegacy(a) => {
            let legacy = alphadome::legacy::LegacyConfig::from_lookup(|k| std::env::var(k).ok())?;
            let ctx = Ctx::open().await?;
            let keys = ctx.keys().await;
            let outcome = alphadome::legacy::import_legacy_tenant(
                &ctx.store,
                &keys,
                legacy,
                a.name,
                PhoneNumber::parse(&a.client_phone).context("--client-phone")?,
                a.contact_name,
            )
            .await?;
            print(a.json, &outcome, |o| {
                format!(
                    "{}\n  earlier conversations adopted: {}",
                    describe_tenant(&o.tenant),
                    o.conversations_adopted
                )
            })
        }
    }
}

fn describe_budget(b: Option<&alphadome::store::BudgetStatus>) -> String {
    let Some(b) = b.filter(|b| b.monthly_ai_tokens.is_some() || b.monthly_messages.is_some())
    else {
        return "\n  monthly budget:     none".into();
    };
    let limit = |n: Option<i64>| {
        n.map(|n| n.to_string())
            .unwrap_or_else(|| "no limit".into())
    };
    let mut s = format!(
        "\n  monthly budget:     AI tokens {} of {}, messages {} of {} ({}%)",
        b.ai_tokens_used,
        limit(b.monthly_ai_tokens),
        b.messages_used,
        limit(b.monthly_messages),
        b.percent.unwrap_or(0),
    );
    if b.ai_stopped {
        s.push_str("\n  AI STOPPED:         monthly budget reached; FAQ answers and hand-overs go on until next month or a higher budget");
    } else if b.notified_this_month {
        s.push_str("\n  budget warning:     owner told this month (80 % passed)");
    }
    s
}

async fn usage(a: crate::UsageArgs) -> anyhow::Result<()> {
    let today = chrono::Utc::now().date_naive();
    let to = a.to.unwrap_or(today);
    let from = a.from.unwrap_or(to - chrono::Duration::days(30));
    if from > to {
        anyhow::bail!("--from {from} is after --to {to}");
    }
    let ctx = Ctx::open().await?;
    let tenant = match a.tenant.as_deref() {
        Some(t) => Some(ctx.store.find_tenant(t).await?),
        None => None,
    };
    let days = ctx.store.usage_days(tenant, from, to).await?;
    let prices = ctx.store.prices().await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&days)?);
    } else if a.csv {
        print!("{}", alphadome_cli::usage::to_csv(&days, &prices));
    } else {
        println!("{}", alphadome_cli::usage::to_text(&days, &prices));
    }
    Ok(())
}

async fn set_active(r: crate::TenantRef, active: bool) -> anyhow::Result<()> {
    let ctx = Ctx::open().await?;
    let id = ctx.store.find_tenant(&r.tenant).await?;
    ctx.store.set_tenant_active(id, active).await?;
    let out = serde_json::json!({"tenant_id": id, "is_active": active});
    print(r.json, &out, |_| {
        format!(
            "tenant {id} {}",
            if active { "enabled" } else { "disabled" }
        )
    })
}

/// `admin token`: a development access token, printed alone on stdout.
async fn admin_token(args: crate::AdminToken) -> anyhow::Result<()> {
    use alphadome::admin::auth::DevKey;
    if std::env::var(alphadome::admin::SUPABASE_URL).is_ok_and(|v| !v.trim().is_empty()) {
        anyhow::bail!(
            "SUPABASE_URL is set: owners sign in with Supabase Auth at /admin/login; development tokens exist only for local runs without SUPABASE_URL"
        );
    }
    let settings = Settings::from_env()?;
    let brand = match (args.brand, &args.tenant) {
        (Some(brand), _) => brand,
        (None, Some(tenant)) => {
            let store = Store::connect(&database_url(&settings)?, 1).await?;
            let id = store.find_tenant(tenant).await?;
            store.tenant_summary(id).await?.brand_id.0
        }
        (None, None) => anyhow::bail!("give --tenant T or --brand UUID"),
    };
    let dir = match &settings.key_provider {
        config::KeyProviderSetting::Local { dir } => dir.clone(),
        config::KeyProviderSetting::Aws { .. } => std::env::var(config::LOCAL_KEY_DIR)
            .unwrap_or_else(|_| config::DEFAULT_LOCAL_KEY_DIR.into())
            .into(),
    };
    let key = DevKey::load_or_create(&DevKey::path_for(&dir))?;
    println!("{}", key.issue(brand, args.email.as_deref(), args.ttl));
    eprintln!(
        "paste it at http://127.0.0.1:3000/admin/login while `alphadome serve` runs (valid {} min)",
        args.ttl.as_secs() / 60
    );
    Ok(())
}

async fn serve(args: crate::Serve) -> anyhow::Result<()> {
    use alphadome_cli::serve::{run_consumer, run_server, ServeOptions};
    let workers = args.workers.max(1);
    let pollers = if std::env::var_os("REPLY_QUEUE_URL").is_some() {
        args.consumers
    } else {
        0
    };
    let app = alphadome::app::App::from_env(alphadome::app::AppOptions::local(
        args.db_connections
            .unwrap_or(workers.max(pollers) as u32 + 4),
    ))
    .await?;
    let options = ServeOptions {
        dry_run: args.dry_run,
        workers,
        batch: args.batch.max(1),
        retry: alphadome::local_queue::RetryPolicy {
            max_attempts: args.max_attempts.max(1),
            ..Default::default()
        },
        drain_timeout: std::time::Duration::from_secs(args.drain_timeout),
        consumer: alphadome::sqs_consumer::ConsumerOptions {
            pollers: args.consumers,
            wait_seconds: args.wait_seconds,
            batch_timeout: std::time::Duration::from_secs(args.batch_timeout),
            ..Default::default()
        },
        lease_seconds: args.lease_seconds,
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("shutting down: finishing requests and batches in hand, then draining the queue");
    };
    if args.no_http {
        if app.settings.reply_queue_url.is_none() {
            anyhow::bail!("--no-http needs REPLY_QUEUE_URL: there is nothing to consume");
        }
        let counts = run_consumer(&app, options, shutdown).await?;
        eprintln!(
            "stopped: {} records received, {} deleted, {} left for redelivery, {} handed back",
            counts.received, counts.deleted, counts.failed, counts.handed_back
        );
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {}", args.addr, e.kind()))?;
    let report = run_server(&app, options, listener, shutdown).await?;
    eprintln!(
        "stopped: {} jobs handled, {} left unfinished, {} parked",
        report.processed, report.left, report.parked
    );
    Ok(())
}

async fn soak(a: crate::Soak) -> anyhow::Result<()> {
    let settings = alphadome::config::Settings::from_env()?;
    let database_url = alphadome_cli::demo::require_database_url(&settings)?;
    let exe = std::env::current_exe().context("finding the alphadome binary")?;
    let report = alphadome_cli::soak::run(alphadome_cli::soak::SoakOptions {
        messages: a.messages,
        tenants: a.tenants,
        customers_per_tenant: a.customers,
        rate: a.rate,
        ai_every: a.ai_every,
        per_delivery: a.per_delivery,
        exe,
        database_url,
        moto: a.moto,
        pg_restart: a.pg_restart,
        run_dir: a.run_dir,
        faults: !a.no_faults,
        statuses: !a.no_statuses,
        visibility_timeout_s: a.visibility_timeout,
        lease_s: a.lease_seconds,
        batch_timeout_s: a.batch_timeout,
        max_receive_count: a.max_receive_count,
        stall_timeout: std::time::Duration::from_secs(u64::from(a.visibility_timeout) * 2 + 30),
    })
    .await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

async fn loadtest(a: crate::Loadtest) -> anyhow::Result<()> {
    let report = alphadome_cli::loadtest::run(alphadome_cli::loadtest::LoadTest {
        url: a.url,
        tenants: a.tenants,
        messages: a.messages,
        concurrency: a.concurrency,
        customers_per_tenant: a.customers,
        setup_only: a.setup_only,
        stall_timeout: std::time::Duration::from_secs(30),
    })
    .await?;
    if let (true, Some(r)) = (a.json, report) {
        println!("{}", serde_json::to_string_pretty(&r)?);
    }
    Ok(())
}
