//! `alphadome demo`: the first run. From nothing but a reachable PostgreSQL it migrates, sets
//! up two demo businesses (fixed ids, matching the sample events in `events/`), sends signed
//! customer messages for both through the real webhook code and the in-process queue, and
//! prints what each customer was answered and from where. Nothing leaves the machine: replies
//! are printed, not sent; the AI is used only when `OPENAI_API_KEY` is set.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alphadome::app::App;
use alphadome::config::{self, PlatformSecrets, Settings};
use alphadome::domain::{PhoneNumber, PhoneNumberId, TenantId};
use alphadome::keys::{KeyBackend, KeyProvider};
use alphadome::local_queue::{LocalQueue, RetryPolicy};
use alphadome::queue::JobQueue;
use alphadome::responder::{DryRunReply, Outbox, ResponderOptions};
use alphadome::store::{NewEntry, NewTemplate, NewTenant, Store, StoreError};
use anyhow::{anyhow, bail, Context as _};
use secrecy::SecretString;

use crate::meta::{signature, TextMessage};

/// The app secret and verify token of the sample events: test values, never real ones.
pub const DEMO_APP_SECRET: &str = "alphadome-test-app-secret";
pub const DEMO_VERIFY_TOKEN: &str = "alphadome-test-verify-token";

/// A demo business and what its customers write.
pub struct DemoBusiness {
    pub tenant_id: &'static str,
    pub name: &'static str,
    pub contact_name: &'static str,
    pub client_phone: &'static str,
    pub escalation_phone: &'static str,
    pub phone_number_id: &'static str,
    pub display_phone_number: &'static str,
    /// Path under the repository, and the copy built into the binary.
    pub faq_file: &'static str,
    pub faq_embedded: &'static str,
    pub prompt_file: &'static str,
    pub prompt_embedded: &'static str,
    pub tone: &'static str,
    /// (customer index, text): customer 0 asks most; another one asks for a person.
    pub messages: &'static [(usize, &'static str)],
}

pub const KASSANGAS: DemoBusiness = DemoBusiness {
    tenant_id: "8a3f1c2e-0000-4000-8000-00000000a001",
    name: "Kassangas Music Shop",
    contact_name: "Kassangas",
    client_phone: "254702245555",
    escalation_phone: "254702245555",
    phone_number_id: "110000000001",
    display_phone_number: "254700000001",
    faq_file: "demo/kassangas.csv",
    faq_embedded: include_str!("../../demo/kassangas.csv"),
    prompt_file: "demo/kassangas-prompt.txt",
    prompt_embedded: include_str!("../../demo/kassangas-prompt.txt"),
    tone: "warm, brief, helpful",
    messages: &[
        (0, "Hi"),
        (0, "What time do you open on Saturday?"),
        (0, "Naeza lipa na mpesa?"),
        (0, "mnadeliver?"),
        (0, "Bei ya guitar ni ngapi?"),
        (0, "hw much is a keyboard"),
        (0, "Do you have guitar strings?"),
        (0, "Thank you"),
        (1, "I want to talk to a person please"),
        (0, "Do you sell violins and cellos?"),
        (0, "STOP"),
    ],
};

pub const NYOTA: DemoBusiness = DemoBusiness {
    tenant_id: "8a3f1c2e-0000-4000-8000-00000000a002",
    name: "Nyota Beauty Salon",
    contact_name: "Nyota",
    client_phone: "254722000002",
    escalation_phone: "254722000002",
    phone_number_id: "110000000002",
    display_phone_number: "254700000002",
    faq_file: "demo/nyota-salon.csv",
    faq_embedded: include_str!("../../demo/nyota-salon.csv"),
    prompt_file: "demo/nyota-salon-prompt.txt",
    prompt_embedded: include_str!("../../demo/nyota-salon-prompt.txt"),
    tone: "friendly and brief",
    messages: &[
        (0, "Hello"),
        (0, "How much are knotless braids?"),
        (0, "mnafanya pedicure?"),
        (0, "Naeza book appointment kesho?"),
        (0, "Mko wapi?"),
        (0, "Can I pay with mpesa?"),
        (1, "Nataka kuongea na mtu"),
        (0, "Do you do eyebrow microblading?"),
        (0, "STOP"),
    ],
};

/// The database URL, or one line telling how to set it.
pub fn require_database_url(settings: &Settings) -> anyhow::Result<SecretString> {
    settings.database_url.clone().ok_or_else(|| {
        anyhow!(
            "{} is not set: point it at a PostgreSQL server, e.g. export {}=postgres://postgres@127.0.0.1:5432/alphadome (docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16 starts one)",
            config::DATABASE_URL,
            config::DATABASE_URL
        )
    })
}

/// The knowledge entries: the file under `demo/` when run from the repository (so edits show
/// up), else the copy built into the binary.
fn knowledge(b: &DemoBusiness) -> anyhow::Result<Vec<NewEntry>> {
    let path = Path::new(b.faq_file);
    let entries = if path.is_file() {
        alphadome::knowledge_file::read_knowledge_file(path)
    } else {
        alphadome::knowledge_file::parse_csv(b.faq_embedded)
    };
    entries.with_context(|| format!("reading {}", b.faq_file))
}

fn prompt(b: &DemoBusiness) -> String {
    std::fs::read_to_string(b.prompt_file)
        .unwrap_or_else(|_| b.prompt_embedded.to_owned())
        .trim()
        .to_owned()
}

/// Creates the business unless it exists, then (re)loads its FAQ and prompt. Idempotent.
pub async fn ensure_business(
    store: &Store,
    keys: &KeyProvider,
    b: &DemoBusiness,
) -> anyhow::Result<TenantId> {
    let id: TenantId = b.tenant_id.parse().context("demo tenant id")?;
    match store.find_tenant(b.tenant_id).await {
        Ok(_) => {}
        Err(StoreError::NotFound(_)) => {
            let token = format!("demo-placeholder-whatsapp-token-{}", b.phone_number_id);
            store
                .create_tenant_with_id(
                    keys,
                    id,
                    NewTenant {
                        client_name: b.name.to_owned(),
                        client_phone: PhoneNumber::parse(b.client_phone)?,
                        phone_number_id: PhoneNumberId::parse(b.phone_number_id)?,
                        contact_name: Some(b.contact_name.to_owned()),
                        brand_id: None,
                        whatsapp_token: Some(SecretString::from(token)),
                        ai_api_key: None,
                        meta_app_secret: None,
                        escalation_phone: Some(PhoneNumber::parse(b.escalation_phone)?),
                        max_messages_per_hour: None,
                    },
                )
                .await
                .with_context(|| {
                    format!(
                        "creating the demo business {} (phone_number_id {})",
                        b.name, b.phone_number_id
                    )
                })?;
        }
        Err(e) => return Err(e.into()),
    }
    store
        .import_entries(id, &knowledge(b)?)
        .await
        .with_context(|| format!("importing the FAQ of {}", b.name))?;
    store
        .set_template(
            id,
            &NewTemplate {
                name: "default".into(),
                system_prompt: prompt(b),
                tone: Some(b.tone.to_owned()),
                model: None,
                is_default: true,
            },
        )
        .await
        .with_context(|| format!("setting the prompt of {}", b.name))?;
    Ok(id)
}

/// The key directory the demo seals its placeholder tokens under.
pub fn key_dir(settings: &Settings) -> PathBuf {
    match &settings.key_provider {
        config::KeyProviderSetting::Local { dir } => dir.clone(),
        config::KeyProviderSetting::Aws { .. } => PathBuf::from(config::DEFAULT_LOCAL_KEY_DIR),
    }
}

/// Rows of `public.conversations` for one tenant's brand: (incoming, outgoing) overall and
/// for this run's messages.
async fn count_rows(store: &Store, tenant: TenantId, run_prefix: &str) -> anyhow::Result<[i64; 4]> {
    let mut tx = store.begin_for_tenant(tenant).await?;
    let row: (i64, i64, i64, i64) = sqlx::query_as(
        "select count(*) filter (where c.direction = 'incoming'),
                count(*) filter (where c.direction = 'outgoing'),
                count(*) filter (where c.direction = 'incoming' and c.wa_message_id like $2),
                count(*) filter (where c.direction = 'outgoing' and c.in_reply_to like $2)
           from public.conversations c
           join alphadome.bot_tenants t on t.brand_id = c.brand_id
          where t.id = $1",
    )
    .persistent(false)
    .bind(tenant)
    .bind(format!("{run_prefix}%"))
    .fetch_one(&mut *tx)
    .await
    .context("counting conversation rows")?;
    tx.commit().await.context("committing")?;
    Ok([row.0, row.1, row.2, row.3])
}

/// Why a logged message got no reply (`conversations.note`), if it was logged.
async fn silence_note(store: &Store, tenant: TenantId, wamid: &str) -> Option<String> {
    let mut tx = store.begin_for_tenant(tenant).await.ok()?;
    let note: Option<Option<String>> = sqlx::query_scalar(
        "select note from public.conversations where wa_message_id = $1 and direction = 'incoming'",
    )
    .persistent(false)
    .bind(wamid)
    .fetch_optional(&mut *tx)
    .await
    .ok()?;
    let _ = tx.commit().await;
    note.flatten()
}

/// A fresh customer number for this run (a re-run is not met by the last run's STOP).
fn demo_customer(run: &uuid::Uuid, index: usize) -> String {
    let n = (run.as_u128() >> 64) as u64 % 10_000_000;
    format!("2547{:07}{}", n, index % 10)
}

/// Runs the demo; `out` receives the transcript.
pub async fn run_demo(out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let started = Instant::now();
    let settings = Settings::from_env()?;
    let url = require_database_url(&settings)?;
    let where_ = crate::serve::describe_database(&url);
    alphadome::store::migrate(&url).await.map_err(|e| {
        anyhow!("cannot use the database at {where_}: {e:#}. Start PostgreSQL or set DATABASE_URL, e.g. export DATABASE_URL=postgres://postgres@127.0.0.1:5432/alphadome")
    })?;
    let store = Store::connect(&url, 4).await?;
    let dir = key_dir(&settings);
    let keys = KeyProvider::new(KeyBackend::LocalDir(dir.clone()), Duration::from_secs(60));

    let businesses = [&KASSANGAS, &NYOTA];
    let mut ids = Vec::new();
    for b in businesses {
        ids.push(ensure_business(&store, &keys, b).await?);
    }

    let ai_key = settings.overrides.openai_api_key.clone();
    let replies: Arc<Mutex<Vec<DryRunReply>>> = Arc::default();
    let sink = replies.clone();
    let outbox = Outbox::DryRun(Arc::new(move |r: DryRunReply| {
        sink.lock().expect("reply list").push(r);
    }));
    // The demo's own webhook secrets, so its signed messages verify whatever the shell has.
    let mut demo_settings = settings.clone();
    demo_settings.legacy = None;
    let app = App::from_parts(
        demo_settings,
        PlatformSecrets {
            meta_app_secret: Some(SecretString::from(DEMO_APP_SECRET)),
            meta_verify_token: Some(SecretString::from(DEMO_VERIFY_TOKEN)),
            openai_api_key: ai_key.clone(),
            database_url: None,
            dashboard: Default::default(),
        },
        store.clone(),
        keys.clone(),
    );
    let responder = app.responder_with(
        outbox,
        ResponderOptions {
            context_ttl: Duration::from_secs(5),
            ..app.responder_options()
        },
    );
    let queue = LocalQueue::start(
        crate::serve::responder_handler(responder),
        4,
        10,
        RetryPolicy {
            max_attempts: 2,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(200),
        },
    );
    let ingress = app.ingress(JobQueue::Local(queue.clone()));

    let run = uuid::Uuid::new_v4();
    let run_prefix = format!("wamid.demo.{}.", run.simple());
    writeln!(
        out,
        "Alphadome demo: database {where_}, keys in {}, AI {}\nEvery message below went through the signed webhook, the queue and the responder; replies are printed, not sent.",
        dir.display(),
        if ai_key.is_some() {
            "on (OPENAI_API_KEY)"
        } else {
            "off (set OPENAI_API_KEY to let the AI answer what the FAQ cannot)"
        }
    )?;
    for (b, tenant) in businesses.iter().zip(&ids) {
        writeln!(
            out,
            "\n== {} (tenant {}, phone_number_id {}) ==",
            b.name, tenant, b.phone_number_id
        )?;
        for (n, (customer, text)) in b.messages.iter().enumerate() {
            let from = demo_customer(&run, *customer);
            let wamid = format!("{run_prefix}{}.{n}", b.phone_number_id);
            let body = TextMessage {
                phone_number_id: b.phone_number_id,
                display_phone_number: b.display_phone_number,
                wa_message_id: &wamid,
                from: &from,
                profile_name: if *customer == 0 { "Wanjiku" } else { "Otieno" },
                text,
                timestamp: chrono::Utc::now().timestamp(),
            }
            .to_body();
            let sig = signature(DEMO_APP_SECRET.as_bytes(), &body);
            if let Err(e) = ingress.receive(Some(sig.as_bytes()), &body).await {
                bail!("the webhook refused a demo message: {e}");
            }
            queue.wait_idle().await;
            writeln!(
                out,
                "customer {} > {}",
                alphadome::domain::mask_phone(&from),
                text
            )?;
            let got: Vec<DryRunReply> = std::mem::take(&mut *replies.lock().expect("reply list"));
            if got.is_empty() {
                let why = silence_note(&store, *tenant, &wamid)
                    .await
                    .unwrap_or_else(|| "not logged".into());
                writeln!(out, "    (no reply: {why})")?;
            }
            for r in got {
                let to = if r.source == "escalation" {
                    format!("to the owner {}", r.to)
                } else {
                    "bot".to_owned()
                };
                writeln!(
                    out,
                    "    {to} [{}] < {}",
                    r.source,
                    r.text.replace('\n', "\n        ")
                )?;
            }
        }
        let [inc, outg, run_in, run_out] = count_rows(&store, *tenant, &run_prefix).await?;
        writeln!(
            out,
            "rows in public.conversations for this brand: {run_in} incoming + {run_out} outgoing from this run ({inc} incoming, {outg} outgoing in all)"
        )?;
    }
    let left = queue.drain(Duration::from_secs(5)).await;
    let parked = queue.parked().len();
    if left > 0 || parked > 0 {
        bail!("{left} demo jobs did not finish and {parked} failed; see the log above");
    }
    writeln!(
        out,
        "\nDone in {:.1}s. Next: `alphadome serve --dry-run` and, in another terminal,\n  META_APP_SECRET={DEMO_APP_SECRET} alphadome simulate --tenant {} \"Mko wapi?\"",
        started.elapsed().as_secs_f64(),
        KASSANGAS.phone_number_id
    )?;
    writeln!(
        out,
        "\nThe Kassangas owner's dashboard (conversations, hand-overs, knowledge, settings):\n  alphadome admin token --tenant {} --email gideon@example.com --ttl 1h\n  alphadome serve --dry-run\n  then open http://127.0.0.1:3000/admin/login and paste the token.",
        KASSANGAS.phone_number_id
    )?;
    Ok(())
}
