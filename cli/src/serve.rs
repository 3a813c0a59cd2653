//! `alphadome serve`: the webhook and the responder in one process, over HTTP on a laptop.
//!
//! The same core as the Lambdas: `Ingress` answers `/webhook`, and either SQS carries the jobs
//! (when `REPLY_QUEUE_URL` is set: this process enqueues and, with `--consumers N`, consumes
//! the queue as Lambda's event source mapping does, through the responder Lambda's own batch
//! handler; `--no-http` runs a consumer alone) or the in-process `LocalQueue` hands them to a
//! `Responder` right here. Ctrl-C stops intake, lets requests in flight and batches in hand
//! finish, then drains the in-process queue for a bounded time and reports what was left.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use alphadome::app::App;
use alphadome::domain::PhoneNumberId;
use alphadome::ingress::Ingress;
use alphadome::job::Job;
use alphadome::local_queue::{Handled, Handler, LocalQueue, RetryPolicy};
use alphadome::queue::JobQueue;
use alphadome::responder::{DryRunReply, Outbox, Responder};
use alphadome::sqs_consumer::{ConsumerCounts, ConsumerOptions, SqsConsumer};
use alphadome::store::Store;
use anyhow::Context as _;
use secrecy::SecretString;
use serde::Serialize;

/// Default number of in-process queue workers.
pub const DEFAULT_WORKERS: usize = 4;
/// Default batch size of the in-process queue.
pub const DEFAULT_BATCH: usize = 200;

/// How `serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Print replies instead of sending them through the Graph API.
    pub dry_run: bool,
    /// Batches the in-process queue handles at once.
    pub workers: usize,
    /// Jobs (of distinct conversations) per batch: a tenant's jobs in a batch share their
    /// database round trips.
    pub batch: usize,
    pub retry: RetryPolicy,
    /// How long shutdown waits for queued and in-flight jobs.
    pub drain_timeout: Duration,
    /// With `REPLY_QUEUE_URL`: how the queue is consumed (`pollers` 0: only enqueue).
    pub consumer: ConsumerOptions,
    /// The claim lease of this process's responder (default: the responder's 120 s). The
    /// queue's visibility timeout must cover it plus the batch timeout.
    pub lease_seconds: Option<u32>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            workers: DEFAULT_WORKERS,
            batch: DEFAULT_BATCH,
            retry: RetryPolicy::default(),
            drain_timeout: Duration::from_secs(30),
            consumer: ConsumerOptions::default(),
            lease_seconds: None,
        }
    }
}

/// What shutdown found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ServeReport {
    /// Jobs still queued or in flight when the drain gave up (0: drained).
    pub left: usize,
    /// Jobs that used up their attempts (the local dead-letter queue).
    pub parked: usize,
    /// Jobs handled (done or parked) since start.
    pub processed: u64,
}

/// The database as `host:port/name`, never with its user or password.
pub fn describe_database(url: &SecretString) -> String {
    match alphadome::store::connect_options(url) {
        Ok(o) => format!(
            "{}:{}/{}",
            o.get_host(),
            o.get_port(),
            o.get_database().unwrap_or("(default)")
        ),
        Err(_) => "(unparseable DATABASE_URL)".to_owned(),
    }
}

/// The dry-run outbox: one line per reply on stdout (masked recipient, never a token).
pub fn printing_outbox() -> Outbox {
    Outbox::DryRun(Arc::new(|r: DryRunReply| {
        println!(
            "[dry-run] {} ({}) -> {} [{}]: {}",
            r.business,
            r.phone_number_id,
            r.to,
            r.source,
            r.text.replace('\n', " / ")
        );
    }))
}

/// The in-process queue's handler: the responder's batch function. A job that failed for
/// good was recorded as failed by the responder: it is done, not retried.
pub fn responder_handler(responder: Responder) -> Handler {
    let responder = Arc::new(responder);
    Arc::new(move |jobs: Vec<Job>| {
        let responder = responder.clone();
        Box::pin(async move {
            responder
                .handle_jobs(&jobs)
                .await
                .into_iter()
                .map(|r| match r {
                    Ok(_) => Handled::Done,
                    Err(retry) => Handled::Retry(retry.0),
                })
                .collect()
        })
    })
}

/// Fills the ingress's routing cache with every tenant, so the first message of each does not
/// wait for the database. Returns how many routes were loaded.
pub async fn prewarm_routes(store: &Store, ingress: &Ingress) -> anyhow::Result<usize> {
    let tenants = store.list_tenants().await.context("listing tenants")?;
    let mut n = 0;
    for t in tenants {
        let Ok(pnid) = PhoneNumberId::parse(&t.phone_number_id) else {
            continue;
        };
        let route = store
            .resolve_tenant(&pnid)
            .await
            .context("resolving a tenant's route")?;
        ingress.remember_route(pnid.as_str(), route).await;
        n += 1;
    }
    Ok(n)
}

/// The outbox `serve` answers through.
fn outbox(app: &App, options: &ServeOptions) -> Outbox {
    if options.dry_run {
        printing_outbox()
    } else {
        Outbox::Graph(app.whatsapp())
    }
}

/// The responder of this process (the lease as asked).
fn responder(app: &App, options: &ServeOptions) -> Responder {
    let mut tunables = app.responder_options();
    if let Some(lease) = options.lease_seconds {
        tunables.lease_seconds = lease;
    }
    app.responder_with(outbox(app, options), tunables)
}

/// The consumer of `REPLY_QUEUE_URL`, after checking that the queue's visibility timeout
/// covers the claim lease and the batch timeout; `None` with no pollers asked for.
pub async fn sqs_consumer(
    app: &App,
    options: &ServeOptions,
) -> anyhow::Result<Option<(SqsConsumer, alphadome::sqs_consumer::QueueFacts)>> {
    if options.consumer.pollers == 0 {
        return Ok(None);
    }
    let JobQueue::Sqs { client, url } = app.sqs_queue()? else {
        unreachable!("sqs_queue builds an SQS queue")
    };
    let consumer = SqsConsumer::new(
        client,
        url,
        responder(app, options),
        options.consumer.clone(),
    );
    let facts = consumer.queue_facts().await?;
    let lease = Duration::from_secs(
        options
            .lease_seconds
            .unwrap_or(alphadome::responder::ResponderOptions::default().lease_seconds)
            .into(),
    );
    facts.check(lease, options.consumer.batch_timeout)?;
    if facts.max_receive_count.is_none() {
        tracing::warn!("the queue has no redrive policy: a record that always fails is retried until it expires");
    }
    Ok(Some((consumer, facts)))
}

/// Runs only the consumer of `REPLY_QUEUE_URL` (no HTTP) until `shutdown` completes; the
/// batches in hand finish.
pub async fn run_consumer(
    app: &App,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<ConsumerCounts> {
    let Some((consumer, facts)) = sqs_consumer(app, &options).await? else {
        anyhow::bail!("nothing to run: no HTTP and no consumers");
    };
    eprintln!(
        "alphadome serve (consumer only)\n  queue:         {}",
        consumer_line(&consumer, &facts)
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let counts = consumer.run(stopped).await;
    tracing::info!(?counts, "consumer stopped");
    Ok(counts)
}

fn consumer_line(consumer: &SqsConsumer, facts: &alphadome::sqs_consumer::QueueFacts) -> String {
    let o = consumer.options();
    format!(
        "consumed here by {} pollers (batches of up to {}, long poll {} s, batch deadline {} s; visibility timeout {} s, {})",
        o.pollers.max(1),
        o.max_messages.clamp(1, 10),
        o.wait_seconds.clamp(0, 20),
        o.batch_timeout.as_secs(),
        facts.visibility_timeout.as_secs(),
        match facts.max_receive_count {
            Some(n) => format!("dead-letter queue after {n} receives"),
            None => "NO dead-letter queue".to_owned(),
        }
    )
}

/// Runs the server on `listener` until `shutdown` completes, then drains the in-process queue
/// (or lets the SQS consumers finish the batches they hold).
pub async fn run_server(
    app: &App,
    options: ServeOptions,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<ServeReport> {
    let mut consumer = None;
    let (queue, local) = match app.settings.reply_queue_url {
        Some(_) => {
            consumer = sqs_consumer(app, &options).await?;
            (app.sqs_queue()?, None)
        }
        None => {
            let handler = responder_handler(responder(app, &options));
            let q = LocalQueue::start(handler, options.workers, options.batch, options.retry);
            (JobQueue::Local(q.clone()), Some(q))
        }
    };
    let ingress = app.ingress(queue.clone());
    let routes = prewarm_routes(&app.store, &ingress).await?;
    let addr = listener
        .local_addr()
        .context("reading the listen address")?;
    let consumer_line = consumer.as_ref().map(|(c, f)| consumer_line(c, f));
    print_banner(app, &options, &queue, consumer_line, routes, addr);

    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let consuming = consumer.map(|(c, _)| {
        let stopped = stopped.clone();
        tokio::spawn(async move { c.run(stopped).await })
    });

    // Without SUPABASE_URL, `serve` (and only `serve`) trusts development tokens.
    let admin = app.admin(alphadome::admin::DevTokens::Trusted)?;
    let router = app.router_with_admin(ingress, local.clone(), admin);
    let mut http_stopped = stopped.clone();
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = http_stopped.wait_for(|s| *s).await;
        })
        .await
        .context("serving HTTP")?;

    let Some(q) = local else {
        if let Some(task) = consuming {
            // The pollers saw the same signal: they finish the batches they hold.
            let counts = task.await.context("the queue consumer")?;
            tracing::info!(
                ?counts,
                "stopped; the batches in hand are finished, queued jobs stay in SQS"
            );
            return Ok(ServeReport {
                left: 0,
                parked: 0,
                processed: counts.deleted,
            });
        }
        tracing::info!("stopped; queued jobs stay in SQS for the responder");
        return Ok(ServeReport {
            left: 0,
            parked: 0,
            processed: 0,
        });
    };
    tracing::info!(
        pending = q.pending(),
        timeout_s = options.drain_timeout.as_secs(),
        "HTTP stopped; draining the in-process queue"
    );
    let left = q.drain(options.drain_timeout).await;
    let parked = q.parked();
    for p in &parked {
        tracing::error!(
            tenant_id = %p.job.tenant_id,
            attempts = p.attempts,
            reason = %p.last_error,
            "parked job (not answered)"
        );
    }
    let report = ServeReport {
        left,
        parked: parked.len(),
        processed: q.processed(),
    };
    if left > 0 {
        tracing::warn!(
            left,
            parked = report.parked,
            "shutdown gave up with jobs still queued; Meta will not resend them"
        );
    } else {
        tracing::info!(
            parked = report.parked,
            processed = report.processed,
            "queue drained"
        );
    }
    Ok(report)
}

fn print_banner(
    services: &App,
    options: &ServeOptions,
    queue: &JobQueue,
    consumer: Option<String>,
    routes: usize,
    addr: std::net::SocketAddr,
) {
    let s = &services.settings;
    let set = |b: bool| if b { "set" } else { "NOT SET" };
    let database = alphadome::platform::database_url(s, &services.secrets)
        .map(|u| describe_database(&u))
        .unwrap_or_else(|_| "(unknown)".into());
    let queue_line = match queue {
        JobQueue::Local(_) => format!(
            "in-process ({} workers, batches of {}, {} attempts, then parked; see /healthz)",
            options.workers.max(1),
            options.batch.max(1),
            options.retry.max_attempts
        ),
        JobQueue::Sqs { .. } => match &consumer {
            Some(line) => format!("{} (REPLY_QUEUE_URL): {line}", queue.describe()),
            None => format!(
                "{} (REPLY_QUEUE_URL): this process only enqueues (--consumers 0); another `serve`, the responder Lambda or `cargo lambda watch` consumes it",
                queue.describe()
            ),
        },
    };
    let replies = match (queue, options.dry_run) {
        (JobQueue::Sqs { .. }, _) if consumer.is_none() => {
            "sent by the responder that consumes the queue".to_owned()
        }
        (_, true) => "dry run: printed here, never sent".to_owned(),
        (_, false) => format!("Graph API {}", s.whatsapp_api_base_url),
    };
    let ai_key = if services.secrets.openai_api_key.is_some() {
        "platform key set"
    } else {
        "no platform key (AI only for tenants with their own key)"
    };
    eprintln!(
        "alphadome serve\n  database:      {database}\n  queue:         {queue_line}\n  keys:          {keys}\n  ai:            {ai} model {model}, {ai_key}\n  replies:       {replies}\n  app secret:    {app}\n  verify token:  {verify}\n  tenants:       {routes} routes pre-warmed\n  listening:     http://{addr}/webhook (GET handshake, POST deliveries), http://{addr}/healthz, http://{addr}/admin/login (owners)",
        keys = services.keys.describe(),
        ai = s.openai_base_url,
        model = s.openai_model,
        app = set(services.secrets.meta_app_secret.is_some()),
        verify = set(services.secrets.meta_verify_token.is_some()),
    );
    if services.secrets.meta_app_secret.is_none() {
        eprintln!("  warning: META_APP_SECRET is not set: every POST without a tenant's own app secret is refused (401)");
    }
}
