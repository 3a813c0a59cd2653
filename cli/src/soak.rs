//! `alphadome soak`: the production path under faults, counted where replies land.
//!
//! Runs `alphadome serve` as separate processes — one with HTTP (webhook → SQS, plus
//! consumers), one consuming only — against a queue pair on moto (the main FIFO queue with a
//! redrive policy to its dead-letter queue) reached through a TCP proxy this process can
//! switch off, and against stand-ins for Graph and OpenAI served here, which record every
//! request. Signed messages from many customers of several tenants are posted like Meta does
//! (a 5xx or no answer is retried with backoff) while faults are injected on a schedule:
//! PostgreSQL restarted twice (a command given by the caller), Graph answering bursts of 5xx,
//! 429 and timeouts, OpenAI answering 429 and timeouts, the consuming process killed with
//! SIGKILL while it holds a batch and started again, the queue unreachable for a few seconds.
//!
//! Then every message is accounted for at the Graph stand-in, not in our tables: answered
//! exactly once; answered twice because Graph timed out after delivering (the one documented
//! duplicate: the responder cannot know the first send arrived); or not answered and found in
//! the dead-letter queue or with a recorded reason in the database. Anything else is lost or
//! duplicated, and the run fails.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use aws_sdk_sqs::types::QueueAttributeName;
use futures_util::StreamExt as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::loadtest::{ensure_tenants, load_phone_number_id, load_tenant_id};
use crate::meta::signature;

/// How the soak runs.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub messages: usize,
    pub tenants: usize,
    pub customers_per_tenant: usize,
    /// Posts per second the load generator aims at.
    pub rate: f64,
    /// Every n-th message asks something only the AI can answer (0: none).
    pub ai_every: usize,
    /// Messages per webhook delivery (Meta batches several when busy).
    pub per_delivery: usize,
    /// The `alphadome` binary to run `serve` with.
    pub exe: PathBuf,
    pub database_url: SecretString,
    /// moto's address (the proxy forwards to it).
    pub moto: String,
    /// Shell command restarting PostgreSQL (run twice); `None`: no restart.
    pub pg_restart: Option<String>,
    /// Logs of the `serve` processes, keys.
    pub run_dir: PathBuf,
    /// Inject the faults (off: a clean run of the same path).
    pub faults: bool,
    /// Meta's status callbacks: for every reply the Graph stand-in delivers, a signed `sent`
    /// status to the webhook (at once, even when the send's answer is then held past the
    /// client's timeout), carrying the reply's tag as Meta returns it.
    pub statuses: bool,
    pub visibility_timeout_s: u32,
    pub lease_s: u32,
    pub batch_timeout_s: u32,
    pub max_receive_count: u32,
    /// Give up waiting for the last answers after this long without progress.
    pub stall_timeout: Duration,
}

/// What the Graph stand-in did with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GraphOutcome {
    Delivered,
    /// Delivered, then held past the client's timeout.
    DeliveredTimedOut,
    Refused(u16),
}

#[derive(Debug, Clone)]
struct GraphHit {
    /// The customer message the reply quotes.
    quotes: Option<String>,
    ai: bool,
    outcome: GraphOutcome,
}

/// The fault modes of a stand-in.
const NORMAL: u8 = 0;
const ERR_5XX: u8 = 1;
const ERR_429: u8 = 2;
const TIMEOUT: u8 = 3;

/// The stand-ins' shared state.
#[derive(Default)]
struct StandIns {
    graph_mode: AtomicU8,
    ai_mode: AtomicU8,
    hits: Mutex<Vec<GraphHit>>,
    ai_calls: AtomicU64,
    ai_refused: AtomicU64,
    /// Requests being answered, per `serve` process.
    in_flight: Mutex<HashMap<String, i64>>,
    /// Where Meta's status callbacks go, once the webhook is up.
    callback: std::sync::OnceLock<Callback>,
    statuses_posted: AtomicU64,
    statuses_accepted: AtomicU64,
}

/// Meta's side of status callbacks: the webhook, signed with the app secret.
struct Callback {
    url: String,
    secret: SecretString,
    http: reqwest::Client,
}

/// Posts Meta's `sent` status of the delivered message `wamid` to the webhook, retried like
/// Meta retries a delivery the webhook refused or did not answer.
async fn post_status(
    s: Arc<StandIns>,
    pnid: String,
    wamid: String,
    to: Option<String>,
    tag: Option<String>,
) {
    let Some(cb) = s.callback.get() else { return };
    let mut status = serde_json::json!({
        "id": wamid, "status": "sent",
        "timestamp": chrono::Utc::now().timestamp().to_string(),
        "recipient_id": to,
    });
    if let Some(tag) = tag {
        status["biz_opaque_callback_data"] = serde_json::Value::String(tag);
    }
    let payload = serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "254700000009", "phone_number_id": pnid},
            "statuses": [status],
        }}]}],
    });
    let body = crate::meta::to_ascii_json(&payload).into_bytes();
    let sig = signature(cb.secret.expose_secret().as_bytes(), &body);
    s.statuses_posted.fetch_add(1, Ordering::Relaxed);
    if post_as_meta(&cb.http, &cb.url, &sig, body, None).await {
        s.statuses_accepted.fetch_add(1, Ordering::Relaxed);
    }
}

/// Posts a signed delivery to the webhook as Meta does: a 5xx or no answer is retried with
/// backoff (0.5 s doubling to 15 s) for [`META_RETRIES_FOR`]; each retry counted in `retries`.
/// True once the webhook accepted it.
async fn post_as_meta(
    http: &reqwest::Client,
    url: &str,
    sig: &str,
    body: Vec<u8>,
    retries: Option<&AtomicU64>,
) -> bool {
    let mut backoff = Duration::from_millis(500);
    let give_up = Instant::now() + META_RETRIES_FOR;
    loop {
        let accepted = http
            .post(url)
            .header("content-type", "application/json")
            .header(alphadome::webhook::SIGNATURE_HEADER, sig)
            .body(body.clone())
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if accepted {
            return true;
        }
        if Instant::now() > give_up {
            return false;
        }
        if let Some(retries) = retries {
            retries.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(15));
    }
}

impl StandIns {
    fn enter(&self, who: &str) {
        *self
            .in_flight
            .lock()
            .unwrap()
            .entry(who.to_owned())
            .or_default() += 1;
    }
    fn leave(&self, who: &str) {
        *self
            .in_flight
            .lock()
            .unwrap()
            .entry(who.to_owned())
            .or_default() -= 1;
    }
    fn in_flight(&self, who: &str) -> i64 {
        self.in_flight
            .lock()
            .unwrap()
            .get(who)
            .copied()
            .unwrap_or(0)
    }
}

/// How long the load generator retries a delivery the webhook refused or did not answer
/// (Meta retries for much longer, with decreasing frequency).
const META_RETRIES_FOR: Duration = Duration::from_secs(600);

/// How long a "timeout" answer holds the request: past the clients' 8 s.
const HOLD: Duration = Duration::from_secs(10);
/// The AI stand-in's answers start with this, so answers from the AI can be told apart.
const AI_MARK: &str = "[ai-standin]";

async fn graph_send(
    axum::extract::State(s): axum::extract::State<Arc<StandIns>>,
    axum::extract::Path((who, pnid)): axum::extract::Path<(String, String)>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let b: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if b["status"] == "read" {
        return axum::Json(serde_json::json!({"success": true})).into_response();
    }
    let quotes = b["context"]["message_id"].as_str().map(str::to_owned);
    let ai = b["text"]["body"]
        .as_str()
        .is_some_and(|t| t.starts_with(AI_MARK));
    let mode = s.graph_mode.load(Ordering::Relaxed);
    let outcome = match mode {
        ERR_5XX => GraphOutcome::Refused(503),
        ERR_429 => GraphOutcome::Refused(429),
        TIMEOUT => GraphOutcome::DeliveredTimedOut,
        _ => GraphOutcome::Delivered,
    };
    s.hits.lock().unwrap().push(GraphHit {
        quotes,
        ai,
        outcome,
    });
    let wamid = format!("wamid.soak.out.{}", uuid::Uuid::new_v4().simple());
    if !matches!(outcome, GraphOutcome::Refused(_)) {
        // Meta reports the message sent at once, whatever happens to this answer.
        tokio::spawn(post_status(
            s.clone(),
            pnid,
            wamid.clone(),
            b["to"].as_str().map(str::to_owned),
            b["biz_opaque_callback_data"].as_str().map(str::to_owned),
        ));
    }
    let ok = || {
        axum::Json(serde_json::json!({
            "messaging_product": "whatsapp",
            "messages": [{"id": wamid}]
        }))
        .into_response()
    };
    match outcome {
        GraphOutcome::Refused(503) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"error": {"message": "Service temporarily unavailable", "code": 2}})),
        )
            .into_response(),
        GraphOutcome::Refused(_) => (
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            axum::Json(serde_json::json!({"error": {"message": "Rate limit hit", "code": 130429}})),
        )
            .into_response(),
        GraphOutcome::DeliveredTimedOut => {
            s.enter(&who);
            tokio::time::sleep(HOLD).await;
            s.leave(&who);
            ok()
        }
        GraphOutcome::Delivered => ok(),
    }
}

async fn ai_complete(
    axum::extract::State(s): axum::extract::State<Arc<StandIns>>,
    axum::extract::Path(who): axum::extract::Path<String>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    s.ai_calls.fetch_add(1, Ordering::Relaxed);
    s.enter(&who);
    let mode = s.ai_mode.load(Ordering::Relaxed);
    // A little thinking time, so a batch is mid-flight while it waits.
    tokio::time::sleep(Duration::from_millis(if mode == TIMEOUT { 0 } else { 150 })).await;
    let response = match mode {
        ERR_429 => {
            s.ai_refused.fetch_add(1, Ordering::Relaxed);
            (
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                axum::Json(serde_json::json!({"error": {"message": "Rate limit reached", "type": "requests"}})),
            )
                .into_response()
        }
        TIMEOUT => {
            s.ai_refused.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(HOLD + Duration::from_secs(2)).await;
            axum::http::StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        _ => axum::Json(serde_json::json!({
            "id": "chatcmpl-soak", "object": "chat.completion", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("{AI_MARK} A good first guitar is a nylon-string classical.")}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
        }))
        .into_response(),
    };
    s.leave(&who);
    response
}

/// Serves the Graph and OpenAI stand-ins; returns the base address.
async fn start_stand_ins(state: Arc<StandIns>) -> anyhow::Result<String> {
    use axum::routing::post;
    let router = axum::Router::new()
        .route("/graph/{who}/{pnid}/messages", post(graph_send))
        .route("/openai/{who}/v1/chat/completions", post(ai_complete))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the stand-ins")?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(format!("http://{addr}"))
}

/// A TCP proxy to `target` that can be switched off: while off, new connections are closed
/// at once and open ones are cut.
async fn start_proxy(target: String, on: Arc<AtomicBool>) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the queue proxy")?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                continue;
            };
            if !on.load(Ordering::Relaxed) {
                drop(inbound);
                continue;
            }
            let (target, on) = (target.clone(), on.clone());
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                let cut = async {
                    while on.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = cut => {}
                }
            });
        }
    });
    Ok(format!("http://{addr}"))
}

/// What the run found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SoakReport {
    pub messages: usize,
    pub ai_questions: usize,
    pub accepted: usize,
    pub refused_for_good: usize,
    pub webhook_retries: u64,
    pub answered_once: usize,
    /// Answered twice because Graph held the first delivery past the client's timeout.
    pub answered_twice_after_graph_timeout: usize,
    /// Answered more than once otherwise (must be 0).
    pub duplicates: usize,
    pub in_dead_letter_queue: usize,
    /// Not answered, with the database's recorded reason, per reason.
    pub not_answered_with_reason: BTreeMap<String, usize>,
    /// Not answered, not in the DLQ, nothing recorded (must be 0).
    pub lost: usize,
    pub ai_answers: usize,
    pub graph_requests: usize,
    pub graph_refused: usize,
    pub graph_timeouts: usize,
    pub ai_calls: u64,
    pub ai_refused_or_timed_out: u64,
    /// Meta's `sent` status callbacks posted to the webhook (see [`SoakOptions::statuses`]).
    pub statuses_posted: u64,
    /// Status callbacks the webhook had accepted when the run ended.
    pub statuses_accepted: u64,
    pub faults: Vec<String>,
    pub seconds: f64,
    pub post_seconds: f64,
}

/// A `serve` process.
struct Serve {
    name: &'static str,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Serve {
    fn start(&mut self, exe: &PathBuf) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let child = Command::new(exe)
            .arg("serve")
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} ({})", self.name, exe.display()))?;
        self.child = Some(child);
        Ok(())
    }

    fn kill_hard(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    /// Ctrl-C, then wait (SIGKILL after 30 s).
    async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let until = Instant::now() + Duration::from_secs(30);
            while Instant::now() < until {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill_hard();
    }
}

/// Questions the load-test FAQ answers, and ones only the AI can.
const FAQ_QUESTIONS: &[&str] = &[
    "What are your opening hours?",
    "Where are you located?",
    "How can I pay?",
    "Do you deliver?",
    "How much is a guitar?",
];
const AI_QUESTIONS: &[&str] = &[
    "My daughter is nine and loves jazz records, which first instrument would suit her best?",
    "Could you compare the sound of a mahogany body with a spruce top for fingerstyle?",
];

fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    let conf = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "soak",
        ))
        .http_client(alphadome::aws::http_client())
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}

fn sqs_err(e: impl std::error::Error + Send + Sync + 'static) -> anyhow::Error {
    anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e))
}

/// The queue pair: a FIFO queue whose redrive policy moves a record to the FIFO DLQ after
/// `max_receive_count` receives.
async fn create_queues(
    sqs: &aws_sdk_sqs::Client,
    o: &SoakOptions,
) -> anyhow::Result<(String, String)> {
    let name = format!("soak-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .map_err(sqs_err)
        .context("creating the dead-letter queue on moto")?
        .queue_url
        .unwrap_or_default();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(sqs_err)?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| anyhow!("moto gave the DLQ no ARN"))?;
    let url = sqs
        .create_queue()
        .queue_name(format!("{name}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            o.visibility_timeout_s.to_string(),
        )
        .attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": o.max_receive_count})
                .to_string(),
        )
        .send()
        .await
        .map_err(sqs_err)
        .context("creating the reply queue on moto")?
        .queue_url
        .unwrap_or_default();
    Ok((url, dlq))
}

/// Every job in the DLQ (received with a long visibility timeout, so each once).
async fn dead_letters(sqs: &aws_sdk_sqs::Client, dlq: &str) -> anyhow::Result<HashSet<String>> {
    let mut wamids = HashSet::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(dlq)
            .max_number_of_messages(10)
            .visibility_timeout(3600)
            .send()
            .await
            .map_err(sqs_err)?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(wamids);
        }
        for m in messages {
            match alphadome::job::Job::from_json(m.body().unwrap_or_default()) {
                Ok(job) => {
                    wamids.insert(job.wa_message_id().to_owned());
                }
                Err(_) => {
                    wamids.insert(format!("(unreadable {})", m.message_id().unwrap_or("?")));
                }
            }
        }
    }
}

/// Per wamid: the incoming row's status and its replies' statuses.
async fn recorded(
    url: &SecretString,
    wamids: &[String],
) -> anyhow::Result<HashMap<String, String>> {
    let opts = alphadome::store::connect_options(url)?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .context("connecting to count the recorded outcomes")?;
    let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "select i.wa_message_id, i.status,
                (select string_agg(coalesce(o.status, '?'), ',' order by o.created_at)
                   from public.conversations o
                  where o.direction = 'outgoing' and o.in_reply_to = i.wa_message_id)
           from public.conversations i
          where i.direction = 'incoming' and i.wa_message_id = any($1)",
    )
    .persistent(false)
    .bind(wamids)
    .fetch_all(&pool)
    .await
    .context("reading the recorded outcomes")?;
    pool.close().await;
    Ok(rows
        .into_iter()
        .map(|(w, s, r)| {
            (
                w,
                format!(
                    "incoming {} / replies {}",
                    s.unwrap_or_else(|| "?".into()),
                    r.unwrap_or_else(|| "none".into())
                ),
            )
        })
        .collect())
}

/// Tenants, FAQ and the settings the soak needs (no pause after a hand-over, so an AI
/// failure's fallback does not silence the customer's next messages).
async fn set_up(o: &SoakOptions, key_dir: &std::path::Path) -> anyhow::Result<()> {
    alphadome::store::migrate(&o.database_url).await?;
    let store = alphadome::store::Store::connect(&o.database_url, 2).await?;
    let keys = alphadome::keys::KeyProvider::new(
        alphadome::keys::KeyBackend::LocalDir(key_dir.to_owned()),
        Duration::from_secs(60),
    );
    ensure_tenants(&store, &keys, o.tenants).await?;
    let ids: Vec<uuid::Uuid> = (1..=o.tenants).map(|i| load_tenant_id(i).0).collect();
    let mut tx = store.pool().begin().await?;
    sqlx::query(
        "update alphadome.bot_control_settings set escalation_quiet_minutes = 0,
                enable_ai_responses = true where bot_tenant_id = any($1)",
    )
    .persistent(false)
    .bind(&ids)
    .execute(&mut *tx)
    .await
    .context("setting the soak tenants' switches")?;
    tx.commit().await?;
    store.pool().close().await;
    Ok(())
}

/// The fault schedule: (fraction of the load's duration, what).
#[derive(Debug, Clone, Copy)]
enum Fault {
    PgRestart,
    Graph(u8, Duration),
    Ai(u8, Duration),
    KillConsumer,
    QueueDown(Duration),
}

fn schedule(pg: bool) -> Vec<(f64, Fault)> {
    let mut s: Vec<(f64, Fault)> = vec![
        (0.10, Fault::Graph(ERR_5XX, Duration::from_secs(4))),
        (0.25, Fault::Graph(ERR_429, Duration::from_secs(4))),
        (0.30, Fault::Ai(ERR_429, Duration::from_secs(6))),
        (0.40, Fault::KillConsumer),
        (0.55, Fault::QueueDown(Duration::from_secs(5))),
        (0.65, Fault::Graph(TIMEOUT, Duration::from_secs(3))),
        (0.75, Fault::Ai(TIMEOUT, Duration::from_secs(4))),
    ];
    if pg {
        s.push((0.18, Fault::PgRestart));
        s.push((0.85, Fault::PgRestart));
    }
    s.sort_by(|a, b| a.0.total_cmp(&b.0));
    s
}

/// Runs the soak; `Err` when a message was lost or answered twice without a Graph timeout.
pub async fn run(o: SoakOptions) -> anyhow::Result<SoakReport> {
    if o.messages == 0 || o.tenants == 0 || o.rate <= 0.0 {
        bail!("--messages, --tenants and --rate must be positive");
    }
    let secret = std::env::var("META_APP_SECRET")
        .map(SecretString::from)
        .map_err(|_| anyhow!("META_APP_SECRET is not set: the serve processes verify with it"))?;
    std::fs::create_dir_all(&o.run_dir)
        .with_context(|| format!("creating {}", o.run_dir.display()))?;
    let key_dir = o.run_dir.join("keys");
    set_up(&o, &key_dir).await?;

    let state = Arc::new(StandIns::default());
    let stand_ins = start_stand_ins(state.clone()).await?;
    let queue_on = Arc::new(AtomicBool::new(true));
    let moto_addr = o
        .moto
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = start_proxy(moto_addr, queue_on.clone()).await?;
    let sqs = sqs_client(&o.moto);
    let (queue_url, dlq_url) = create_queues(&sqs, &o).await?;

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let webhook = format!("http://127.0.0.1:{port}/webhook");
    let env = |who: &str| -> Vec<(String, String)> {
        vec![
            (
                "DATABASE_URL".into(),
                o.database_url.expose_secret().to_owned(),
            ),
            ("REPLY_QUEUE_URL".into(), queue_url.clone()),
            ("AWS_ENDPOINT_URL".into(), proxy.clone()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            ("META_APP_SECRET".into(), secret.expose_secret().to_owned()),
            ("META_VERIFY_TOKEN".into(), "soak-verify-token".into()),
            ("OPENAI_API_KEY".into(), "sk-soak-standin".into()),
            (
                "OPENAI_BASE_URL".into(),
                format!("{stand_ins}/openai/{who}/v1"),
            ),
            (
                "WHATSAPP_API_BASE_URL".into(),
                format!("{stand_ins}/graph/{who}"),
            ),
            ("KEY_PROVIDER".into(), "local".into()),
            ("LOCAL_KEY_DIR".into(), key_dir.display().to_string()),
            (
                "RUST_LOG".into(),
                std::env::var("SOAK_RUST_LOG").unwrap_or_else(|_| "warn".into()),
            ),
        ]
    };
    let common = |consumers: usize| -> Vec<String> {
        vec![
            "--consumers".into(),
            consumers.to_string(),
            // moto's long poll spins while the visible records all belong to groups in
            // flight, starving every other call: short polls instead.
            "--wait-seconds".into(),
            "0".into(),
            "--lease-seconds".into(),
            o.lease_s.to_string(),
            "--batch-timeout".into(),
            o.batch_timeout_s.to_string(),
            "--db-connections".into(),
            "12".into(),
        ]
    };
    let mut front = Serve {
        name: "serve (webhook + 1 consumer)",
        args: [
            vec!["--addr".to_owned(), format!("127.0.0.1:{port}")],
            common(1),
        ]
        .concat(),
        env: env("front"),
        log: o.run_dir.join("serve-front.log"),
        child: None,
    };
    let mut consumer = Serve {
        name: "serve --no-http (2 consumers)",
        args: [vec!["--no-http".to_owned()], common(2)].concat(),
        env: env("consumer"),
        log: o.run_dir.join("serve-consumer.log"),
        child: None,
    };
    let _ = std::fs::remove_file(&front.log);
    let _ = std::fs::remove_file(&consumer.log);
    front.start(&o.exe)?;
    consumer.start(&o.exe)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .pool_max_idle_per_host(32)
        .build()?;
    if o.statuses {
        let _ = state.callback.set(Callback {
            url: webhook.clone(),
            secret: secret.clone(),
            http: http.clone(),
        });
    }
    let health = webhook.replace("/webhook", "/healthz");
    let up = Instant::now();
    while http.get(&health).send().await.is_err() {
        if up.elapsed() > Duration::from_secs(30) {
            bail!(
                "the webhook did not come up in 30 s (see {})",
                front.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The messages, pre-signed: deliveries of up to `per_delivery` messages of one tenant's
    // customers, as Meta batches them when busy.
    let run = uuid::Uuid::new_v4().simple().to_string();
    let customers = o.customers_per_tenant.max(1);
    let mut wamids = Vec::with_capacity(o.messages);
    let mut per_tenant: Vec<Vec<serde_json::Value>> = vec![Vec::new(); o.tenants];
    let mut ai_questions = 0;
    let now = chrono::Utc::now().timestamp();
    for i in 0..o.messages {
        let tenant = i % o.tenants;
        let customer = (i / o.tenants) % customers;
        let from = format!("2547{:02}{:06}", (tenant + 1) % 100, customer);
        let wamid = format!("wamid.soak.{}.{i}", &run[..8]);
        let ai = o.ai_every > 0 && i % o.ai_every == o.ai_every - 1;
        ai_questions += usize::from(ai);
        let text = if ai {
            AI_QUESTIONS[i % AI_QUESTIONS.len()]
        } else {
            FAQ_QUESTIONS[i % FAQ_QUESTIONS.len()]
        };
        per_tenant[tenant].push(serde_json::json!({
            "from": from, "id": wamid, "timestamp": now.to_string(), "type": "text",
            "text": {"body": text},
        }));
        wamids.push(wamid);
    }
    let mut bodies = Vec::new();
    for (t, messages) in per_tenant.iter().enumerate() {
        for chunk in messages.chunks(o.per_delivery.max(1)) {
            let contacts: Vec<serde_json::Value> = chunk
                .iter()
                .map(|m| serde_json::json!({"profile": {"name": "Soak"}, "wa_id": m["from"]}))
                .collect();
            let payload = serde_json::json!({
                "object": "whatsapp_business_account",
                "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "254700000009", "phone_number_id": load_phone_number_id(t + 1)},
                    "contacts": contacts,
                    "messages": chunk,
                }}]}],
            });
            let body = crate::meta::to_ascii_json(&payload).into_bytes();
            let sig = signature(secret.expose_secret().as_bytes(), &body);
            bodies.push((body, sig));
        }
    }
    // Interleave the tenants' deliveries.
    bodies.sort_by_key(|(b, _)| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(b, &mut h);
        std::hash::Hasher::finish(&h)
    });
    let load_seconds = o.messages as f64 / o.rate;
    eprintln!(
        "soak: {} messages ({} for the AI), {} tenants x {} customers, {:.0}/s for {:.0} s; faults {}",
        o.messages,
        ai_questions,
        o.tenants,
        customers,
        o.rate,
        load_seconds,
        if o.faults { "on" } else { "off" }
    );

    // Faults, on their schedule, beside the load.
    let started = Instant::now();
    let faults_log = Arc::new(Mutex::new(Vec::<String>::new()));
    let consumer_cell = Arc::new(tokio::sync::Mutex::new(consumer));
    let fault_task = {
        let (state, queue_on, log, consumer_cell) = (
            state.clone(),
            queue_on.clone(),
            faults_log.clone(),
            consumer_cell.clone(),
        );
        let (pg_restart, exe, enabled) = (o.pg_restart.clone(), o.exe.clone(), o.faults);
        tokio::spawn(async move {
            if !enabled {
                return;
            }
            let note = |s: String| {
                eprintln!("  [{:6.1}s] {s}", started.elapsed().as_secs_f64());
                log.lock()
                    .unwrap()
                    .push(format!("{:.1}s {s}", started.elapsed().as_secs_f64()));
            };
            for (at, fault) in schedule(pg_restart.is_some()) {
                let when = Duration::from_secs_f64(at * load_seconds);
                tokio::time::sleep(when.saturating_sub(started.elapsed())).await;
                match fault {
                    Fault::PgRestart => {
                        let cmd = pg_restart.clone().unwrap_or_default();
                        let t = Instant::now();
                        let ok = tokio::task::spawn_blocking(move || {
                            Command::new("sh")
                                .args(["-c", &cmd])
                                .stdout(Stdio::null())
                                .stderr(Stdio::null())
                                .status()
                                .is_ok_and(|s| s.success())
                        })
                        .await
                        .unwrap_or(false);
                        note(format!(
                            "PostgreSQL restarted ({}, {:.1} s)",
                            if ok { "ok" } else { "FAILED" },
                            t.elapsed().as_secs_f64()
                        ));
                    }
                    Fault::Graph(mode, d) | Fault::Ai(mode, d) => {
                        let (target, name) = match fault {
                            Fault::Graph(..) => (&state.graph_mode, "Graph"),
                            _ => (&state.ai_mode, "OpenAI"),
                        };
                        let what = match mode {
                            ERR_5XX => "5xx",
                            ERR_429 => "429",
                            _ => "timeouts",
                        };
                        note(format!("{name} answers {what} for {} s", d.as_secs()));
                        target.store(mode, Ordering::Relaxed);
                        tokio::time::sleep(d).await;
                        target.store(NORMAL, Ordering::Relaxed);
                    }
                    Fault::KillConsumer => {
                        // Mid-batch: wait (a while) for the consumer to hold an AI call.
                        let t = Instant::now();
                        while state.in_flight("consumer") == 0
                            && t.elapsed() < Duration::from_secs(10)
                        {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        let held = state.in_flight("consumer");
                        let mut c = consumer_cell.lock().await;
                        c.kill_hard();
                        note(format!(
                            "consumer process killed with SIGKILL holding {held} outbound call(s)"
                        ));
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        match c.start(&exe) {
                            Ok(()) => note("consumer process started again".into()),
                            Err(e) => note(format!("consumer restart FAILED: {e:#}")),
                        }
                    }
                    Fault::QueueDown(d) => {
                        note(format!("queue endpoint unreachable for {} s", d.as_secs()));
                        queue_on.store(false, Ordering::Relaxed);
                        tokio::time::sleep(d).await;
                        queue_on.store(true, Ordering::Relaxed);
                    }
                }
            }
        })
    };

    // A supervisor for the consumer-only process, as systemd or Lambda would be: `serve`
    // exits when it cannot read the queue's attributes at start (a restart that lands in
    // the queue outage), and is started again.
    let watchdog = {
        let (consumer_cell, log, exe) = (consumer_cell.clone(), faults_log.clone(), o.exe.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let mut c = consumer_cell.lock().await;
                let exited = match c.child.as_mut() {
                    Some(child) => child.try_wait().ok().flatten(),
                    None => None,
                };
                if let Some(status) = exited {
                    c.child = None;
                    let what = match c.start(&exe) {
                        Ok(()) => format!("consumer process exited ({status}); started again"),
                        Err(e) => {
                            format!("consumer process exited ({status}); restart FAILED: {e:#}")
                        }
                    };
                    eprintln!("  [{:6.1}s] {what}", started.elapsed().as_secs_f64());
                    log.lock()
                        .unwrap()
                        .push(format!("{:.1}s {what}", started.elapsed().as_secs_f64()));
                }
            }
        })
    };

    // The load: paced, retried like Meta retries (backoff, for up to ten minutes).
    let retries = Arc::new(AtomicU64::new(0));
    let interval = Duration::from_secs_f64(o.per_delivery.max(1) as f64 / o.rate);
    let results: Vec<bool> = futures_util::stream::iter(bodies.into_iter().enumerate())
        .map(|(i, (body, sig))| {
            let (http, url, retries) = (http.clone(), webhook.clone(), retries.clone());
            async move {
                let due = started + interval.mul_f64(i as f64);
                tokio::time::sleep_until(due.into()).await;
                post_as_meta(&http, &url, &sig, body, Some(&retries)).await
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let post_seconds = started.elapsed().as_secs_f64();
    let deliveries = results.len();
    let accepted_deliveries = results.iter().filter(|ok| **ok).count();
    let accepted = if accepted_deliveries == deliveries {
        o.messages
    } else {
        o.messages - (deliveries - accepted_deliveries) * o.per_delivery.max(1)
    };
    eprintln!(
        "posted in {post_seconds:.1} s: {accepted} accepted, {} retries; waiting for the answers...",
        retries.load(Ordering::Relaxed)
    );
    let _ = fault_task.await;

    // Wait until every message is answered, or nothing moves for a while.
    let answered_now = |state: &StandIns| -> usize {
        let hits = state.hits.lock().unwrap();
        hits.iter()
            .filter(|h| {
                h.outcome != GraphOutcome::Refused(503) && h.outcome != GraphOutcome::Refused(429)
            })
            .filter_map(|h| h.quotes.as_deref())
            .collect::<HashSet<_>>()
            .len()
    };
    let mut last = 0;
    let mut progress = Instant::now();
    loop {
        let n = answered_now(&state);
        if n >= accepted {
            break;
        }
        if n > last {
            last = n;
            progress = Instant::now();
        } else if progress.elapsed() > o.stall_timeout {
            eprintln!(
                "no new answer for {} s; counting",
                o.stall_timeout.as_secs()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Late duplicates would show up now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    watchdog.abort();
    front.stop().await;
    consumer_cell.lock().await.stop().await;
    let seconds = started.elapsed().as_secs_f64();

    // Counting at the Graph stand-in.
    let hits = state.hits.lock().unwrap().clone();
    let mut delivered: HashMap<&str, (usize, usize, bool)> = HashMap::new();
    let (mut refused, mut timeouts) = (0, 0);
    for h in &hits {
        match h.outcome {
            GraphOutcome::Refused(_) => refused += 1,
            GraphOutcome::DeliveredTimedOut => timeouts += 1,
            GraphOutcome::Delivered => {}
        }
        let Some(q) = h.quotes.as_deref() else {
            continue;
        };
        let e = delivered.entry(q).or_default();
        match h.outcome {
            GraphOutcome::Delivered => e.0 += 1,
            GraphOutcome::DeliveredTimedOut => e.1 += 1,
            GraphOutcome::Refused(_) => {}
        }
        e.2 |= h.ai
            && h.outcome != GraphOutcome::Refused(503)
            && h.outcome != GraphOutcome::Refused(429);
    }
    let dlq = dead_letters(&sqs, &dlq_url).await.unwrap_or_default();
    let mut report = SoakReport {
        messages: o.messages,
        ai_questions,
        accepted,
        refused_for_good: o.messages - accepted,
        webhook_retries: retries.load(Ordering::Relaxed),
        graph_requests: hits.len(),
        graph_refused: refused,
        graph_timeouts: timeouts,
        ai_calls: state.ai_calls.load(Ordering::Relaxed),
        ai_refused_or_timed_out: state.ai_refused.load(Ordering::Relaxed),
        statuses_posted: state.statuses_posted.load(Ordering::Relaxed),
        statuses_accepted: state.statuses_accepted.load(Ordering::Relaxed),
        faults: faults_log.lock().unwrap().clone(),
        seconds,
        post_seconds,
        ..Default::default()
    };
    let mut unanswered = Vec::new();
    for w in &wamids {
        match delivered.get(w.as_str()) {
            Some(&(ok, timed_out, ai)) if ok + timed_out > 0 => {
                report.ai_answers += usize::from(ai);
                if ok + timed_out == 1 {
                    report.answered_once += 1;
                } else if ok <= 1 {
                    // Every extra delivery was one Graph held past the client's timeout.
                    report.answered_twice_after_graph_timeout += 1;
                } else {
                    report.duplicates += 1;
                }
            }
            _ if dlq.contains(w) => report.in_dead_letter_queue += 1,
            _ => unanswered.push(w.clone()),
        }
    }
    if !unanswered.is_empty() {
        let reasons = recorded(&o.database_url, &unanswered).await?;
        for w in &unanswered {
            match reasons.get(w) {
                // A message still in progress, or given back for a retry, is not an outcome.
                Some(r)
                    if !r.starts_with("incoming processing")
                        && !r.starts_with("incoming retry") =>
                {
                    *report
                        .not_answered_with_reason
                        .entry(r.clone())
                        .or_default() += 1;
                }
                _ => report.lost += 1,
            }
        }
    }
    print_report(&report);
    if report.lost > 0 || report.duplicates > 0 || report.refused_for_good > 0 {
        bail!(
            "the soak found {} lost, {} duplicated, {} refused messages",
            report.lost,
            report.duplicates,
            report.refused_for_good
        );
    }
    Ok(report)
}

fn print_report(r: &SoakReport) {
    let mut s = String::new();
    s.push_str(&format!(
        "soak: {} messages ({} asking the AI) in {:.0} s (posted in {:.0} s)\n",
        r.messages, r.ai_questions, r.seconds, r.post_seconds
    ));
    for f in &r.faults {
        s.push_str(&format!("  fault {f}\n"));
    }
    s.push_str(&format!(
        "webhook:  {} accepted, {} refused for good, {} retries (5xx or no answer, retried as Meta does)\n",
        r.accepted, r.refused_for_good, r.webhook_retries
    ));
    s.push_str(&format!(
        "graph:    {} requests, {} refused (5xx/429), {} held past the client's timeout\n",
        r.graph_requests, r.graph_refused, r.graph_timeouts
    ));
    s.push_str(&format!(
        "openai:   {} calls, {} answered 429 or timed out\n",
        r.ai_calls, r.ai_refused_or_timed_out
    ));
    s.push_str(&format!(
        "statuses: {} `sent` callbacks posted to the webhook, {} accepted\n",
        r.statuses_posted, r.statuses_accepted
    ));
    s.push_str(&format!(
        "counted at the Graph stand-in:\n  answered exactly once:                 {}\n  answered twice after a Graph timeout:  {} (delivered, then the client timed out: documented)\n  answered twice otherwise:              {}\n  in the dead-letter queue:              {}\n  not answered, with a recorded reason:  {}\n  lost:                                  {}\n  answers from the AI:                   {}\n",
        r.answered_once,
        r.answered_twice_after_graph_timeout,
        r.duplicates,
        r.in_dead_letter_queue,
        r.not_answered_with_reason.values().sum::<usize>(),
        r.lost,
        r.ai_answers
    ));
    for (reason, n) in &r.not_answered_with_reason {
        s.push_str(&format!("    {n} x {reason}\n"));
    }
    s.push_str(&format!(
        "result:   {}\n",
        if r.lost == 0 && r.duplicates == 0 && r.refused_for_good == 0 {
            "OK (0 lost, 0 duplicates)"
        } else {
            "FAILED"
        }
    ));
    print!("{s}");
}
