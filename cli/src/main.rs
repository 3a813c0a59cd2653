//! `alphadome`: the operator's tool and local runner. Every command calls the same core as
//! the Lambda functions; secrets are read from files or stdin, never from the command line.

mod commands;
mod secrets_input;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "alphadome",
    version,
    about = "Operate the Alphadome WhatsApp assistant platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the database if missing and apply pending migrations (DATABASE_URL).
    Migrate,
    /// Onboard and manage businesses (tenants).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Set a tenant's prompt templates.
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Load and inspect a tenant's FAQ and canned answers.
    #[command(subcommand)]
    Faq(FaqCommand),
    /// Dry run of the answer policy for one message: no sending, no logging.
    Ask(Ask),
    /// Run the webhook and the responder locally over HTTP (the same core as the Lambdas).
    Serve(Serve),
    /// First run: two demo businesses answering sample customers (needs only DATABASE_URL).
    Demo,
    /// Post one signed customer message to a running webhook, as Meta would.
    Simulate(Simulate),
    /// Load benchmark of the whole pipeline against a running `serve --dry-run`.
    Loadtest(Loadtest),
    /// The Lambda path under faults: `serve` processes over SQS (moto), stand-ins for Graph
    /// and OpenAI, PostgreSQL restarts, a consumer killed mid-batch; every message counted
    /// at the Graph stand-in (see scripts/soak.sh).
    Soak(Soak),
    /// The owners' dashboard: development sign-in tokens.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Usage per tenant per day (counted by the pipeline), with estimated costs
    Usage(UsageArgs),
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Print a development access token for a business's owner (only without SUPABASE_URL;
    /// only `alphadome serve` trusts it). Paste it at /admin/login.
    Token(AdminToken),
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("owner").required(true).args(["tenant", "brand"])))]
struct AdminToken {
    /// Tenant id or phone_number_id: the token is for that tenant's business.
    #[arg(long)]
    tenant: Option<String>,
    /// The business (brand) id.
    #[arg(long)]
    brand: Option<uuid::Uuid>,
    /// The owner's e-mail, shown on the dashboard.
    #[arg(long)]
    email: Option<String>,
    /// How long the token is valid: e.g. 30m, 1h, 12h, 7d.
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    ttl: std::time::Duration,
}

/// `30s`, `15m`, `1h`, `7d` (at most 30 days).
fn parse_ttl(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 30m, 1h or 7d"))?;
    let secs = match unit {
        "s" => n,
        "m" | "" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("`{s}`: use s, m, h or d")),
    };
    if secs == 0 || secs > 30 * 86_400 {
        return Err("the lifetime must be between 1 second and 30 days".into());
    }
    Ok(std::time::Duration::from_secs(secs))
}

#[derive(Args)]
struct UsageArgs {
    /// A tenant id or its phone_number_id (default: every tenant)
    #[arg(long)]
    tenant: Option<String>,
    /// First day, YYYY-MM-DD (default: 30 days ago, UTC)
    #[arg(long)]
    from: Option<chrono::NaiveDate>,
    /// Last day, YYYY-MM-DD (default: today, UTC)
    #[arg(long)]
    to: Option<chrono::NaiveDate>,
    /// An array of objects, one per tenant per day
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// CSV, one row per tenant per day, then one total row per tenant
    #[arg(long)]
    csv: bool,
}

#[derive(Args)]
struct Serve {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: std::net::SocketAddr,
    /// Print replies instead of sending them through the Graph API.
    #[arg(long)]
    dry_run: bool,
    /// Batches the in-process queue handles at once.
    #[arg(long, default_value_t = alphadome_cli::serve::DEFAULT_WORKERS)]
    workers: usize,
    /// Jobs per batch, one per conversation at most (a tenant's jobs in a batch share their
    /// database round trips).
    #[arg(long, default_value_t = alphadome_cli::serve::DEFAULT_BATCH)]
    batch: usize,
    /// Attempts per job before it is parked.
    #[arg(long, default_value_t = 5)]
    max_attempts: u32,
    /// Database connections (default: workers + 4).
    #[arg(long)]
    db_connections: Option<u32>,
    /// Seconds Ctrl-C waits for queued jobs before giving up.
    #[arg(long, default_value_t = 30)]
    drain_timeout: u64,
    /// With REPLY_QUEUE_URL: concurrent pollers consuming the queue as Lambda's event source
    /// mapping does (0: only enqueue).
    #[arg(long, default_value_t = 2)]
    consumers: usize,
    /// With REPLY_QUEUE_URL: consume only, no HTTP listener.
    #[arg(long)]
    no_http: bool,
    /// With REPLY_QUEUE_URL: seconds a batch may run before no new wave starts (the
    /// responder function's timeout).
    #[arg(long, default_value_t = 30)]
    batch_timeout: u64,
    /// With REPLY_QUEUE_URL: long-poll wait per receive, 0 to 20 seconds.
    #[arg(long, default_value_t = 20)]
    wait_seconds: i32,
    /// Seconds a claim protects a message from a second worker (default 120); the queue's
    /// visibility timeout must cover it plus the batch timeout.
    #[arg(long)]
    lease_seconds: Option<u32>,
}

#[derive(Args)]
struct Simulate {
    /// Tenant id or phone_number_id.
    #[arg(long)]
    tenant: String,
    /// The webhook to post to.
    #[arg(long, default_value = alphadome_cli::simulate::DEFAULT_URL)]
    url: String,
    /// The customer's number, digits with country code.
    #[arg(long, default_value = "254711000111")]
    from: String,
    /// The customer's message.
    text: String,
}

#[derive(Args)]
struct Loadtest {
    /// The webhook of a running `alphadome serve --dry-run`.
    #[arg(long, default_value = alphadome_cli::simulate::DEFAULT_URL)]
    url: String,
    /// Load-test tenants (phone_number_id 120000000001, ...), created if missing.
    #[arg(long, default_value_t = 20)]
    tenants: usize,
    /// Messages to post.
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Customers per tenant.
    #[arg(long, default_value_t = 50)]
    customers: usize,
    /// Only create the tenants (then start `serve`, then run again without this flag).
    #[arg(long)]
    setup_only: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct Soak {
    /// Messages to post.
    #[arg(long, default_value_t = 10_000)]
    messages: usize,
    /// Load-test tenants (created if missing).
    #[arg(long, default_value_t = 8)]
    tenants: usize,
    /// Customers per tenant.
    #[arg(long, default_value_t = 60)]
    customers: usize,
    /// Messages per second (50: what moto keeps up with under the faults; see the README).
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Every n-th message asks something only the AI can answer (0: none).
    #[arg(long, default_value_t = 5)]
    ai_every: usize,
    /// Messages per webhook delivery (Meta batches several when busy; SQS takes 10 a call).
    #[arg(long, default_value_t = 10)]
    per_delivery: usize,
    /// moto's address (the queue pair is created there; `serve` reaches it through a proxy).
    #[arg(long, default_value = "http://127.0.0.1:5000")]
    moto: String,
    /// Shell command that restarts PostgreSQL (run twice during the load).
    #[arg(long)]
    pg_restart: Option<String>,
    /// Where the `serve` processes' logs and the data keys go.
    #[arg(long, default_value = "/tmp/alphadome-soak")]
    run_dir: PathBuf,
    /// The same run without faults.
    #[arg(long)]
    no_faults: bool,
    /// Without Meta's status callbacks (by default every delivered reply is reported `sent`
    /// to the webhook, with its tag, as Meta does).
    #[arg(long)]
    no_statuses: bool,
    /// The queue's visibility timeout, seconds (>= lease + batch timeout).
    #[arg(long, default_value_t = 45)]
    visibility_timeout: u32,
    /// The claim lease of the `serve` processes, seconds.
    #[arg(long, default_value_t = 15)]
    lease_seconds: u32,
    /// The batch deadline of the consumers (the function's timeout), seconds.
    #[arg(long, default_value_t = 30)]
    batch_timeout: u32,
    /// The redrive policy's maxReceiveCount.
    #[arg(long, default_value_t = 5)]
    max_receive_count: u32,
    /// Print the report as JSON too.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct Ask {
    /// Tenant id or phone_number_id.
    #[arg(long)]
    tenant: String,
    /// Print {"source", "faq_id", "question", "reply"}.
    #[arg(long)]
    json: bool,
    /// The customer's message.
    text: String,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Onboard a business: brand, tenant, settings, data key and sealed secrets.
    Add(TenantAdd),
    /// List every tenant (no secrets).
    List(JsonFlag),
    /// Show one tenant (id or phone_number_id).
    Show(TenantRef),
    /// Switch a tenant's bot on.
    Enable(TenantRef),
    /// Switch a tenant's bot off (messages are still logged, never answered).
    Disable(TenantRef),
    /// Re-encrypt a tenant's secrets under a new data key version.
    RotateKey(RotateKey),
    /// Replace a tenant's WhatsApp token, AI key or Meta app secret (from files or stdin).
    SetSecret(SetSecret),
    /// Move the old single-tenant deployment over as a tenant, reading its environment
    /// (WHATSAPP_TOKEN, WHATSAPP_PHONE_NUMBER_ID, OPENAI_API_KEY, DEFAULT_BRAND_ID).
    ImportLegacy(ImportLegacy),
    /// Set a tenant's monthly budgets: at 80 % the owner is told, at 100 % the AI stops
    SetBudget(SetBudget),
    /// Set the approved utility template a hand-over notice is sent as when the owner's
    /// 24-hour window is closed (Graph 131047); its body takes {{1}} business, {{2}} customer,
    /// {{3}} their message.
    SetEscalationTemplate(SetEscalationTemplate),
    /// Turn voice notes (transcribed, then answered) and pictures (shown to the AI) on or off;
    /// when off, the customer is asked politely to type.
    SetMedia(SetMedia),
}

#[derive(Args)]
struct SetMedia {
    /// Tenant id or its WhatsApp phone_number_id.
    tenant: String,
    /// Transcribe and answer voice notes.
    #[arg(long, value_parser = parse_switch, required_unless_present = "pictures")]
    voice_notes: Option<bool>,
    /// Show pictures to the AI.
    #[arg(long, value_parser = parse_switch)]
    pictures: Option<bool>,
    #[arg(long)]
    json: bool,
}

/// `on` or `off`.
fn parse_switch(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err("on or off".into()),
    }
}

#[derive(Args)]
struct SetEscalationTemplate {
    /// Tenant id or its WhatsApp phone_number_id.
    tenant: String,
    /// The template's name as approved in WhatsApp Manager (lowercase, digits, underscores).
    #[arg(long, required_unless_present = "clear")]
    name: Option<String>,
    /// The template's language code as approved (e.g. en, en_US, sw).
    #[arg(long, required_unless_present = "clear")]
    language: Option<String>,
    /// Remove the template (notices then go as free text only).
    #[arg(long, conflicts_with_all = ["name", "language"])]
    clear: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SetBudget {
    tenant: String,
    /// Monthly AI tokens (prompt + completion); 0 removes the limit
    #[arg(long)]
    ai_tokens: Option<i64>,
    /// Monthly messages sent by the assistant; 0 removes the limit
    #[arg(long)]
    messages: Option<i64>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct JsonFlag {
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct TenantRef {
    /// Tenant id or its WhatsApp phone_number_id.
    tenant: String,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct TenantAdd {
    /// Business name, e.g. "Kassangas Music Shop".
    #[arg(long)]
    name: String,
    /// The business's contact number with country code, e.g. 254702245555.
    #[arg(long)]
    client_phone: String,
    /// Meta's phone_number_id of the WhatsApp number customers write to.
    #[arg(long)]
    phone_number_id: String,
    /// Person to contact at the business.
    #[arg(long)]
    contact_name: Option<String>,
    /// Reuse an existing brand instead of creating one.
    #[arg(long)]
    brand_id: Option<String>,
    /// File holding the WhatsApp access token (`-` for stdin).
    #[arg(long)]
    whatsapp_token_file: Option<PathBuf>,
    /// File holding the tenant's own OpenAI key (`-` for stdin); else the platform key is used.
    #[arg(long)]
    ai_key_file: Option<PathBuf>,
    /// File holding the app secret of the tenant's own Meta app (`-` for stdin).
    #[arg(long)]
    app_secret_file: Option<PathBuf>,
    /// Number that receives escalations (customer asks for a person, AI fails).
    #[arg(long)]
    escalation_phone: Option<String>,
    /// Most replies the bot sends per hour for this tenant (default 200).
    #[arg(long)]
    max_messages_per_hour: Option<i32>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RotateKey {
    /// Tenant id or phone_number_id.
    tenant: String,
    /// After re-encrypting, delete the old key versions (only once no running process
    /// still holds rows sealed under them).
    #[arg(long)]
    retire_old: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SetSecret {
    /// Tenant id or phone_number_id.
    tenant: String,
    #[arg(long)]
    whatsapp_token_file: Option<PathBuf>,
    #[arg(long)]
    ai_key_file: Option<PathBuf>,
    #[arg(long)]
    app_secret_file: Option<PathBuf>,
}

#[derive(Args)]
struct ImportLegacy {
    /// Business name of the existing client.
    #[arg(long)]
    name: String,
    /// The business's contact number with country code.
    #[arg(long)]
    client_phone: String,
    #[arg(long)]
    contact_name: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum TemplateCommand {
    /// Create or replace a template by name.
    Set(TemplateSet),
}

#[derive(Args)]
struct TemplateSet {
    /// Tenant id or phone_number_id.
    #[arg(long)]
    tenant: String,
    /// Template name, e.g. default.
    #[arg(long)]
    name: String,
    /// File holding the system prompt (`-` for stdin).
    #[arg(long)]
    system_prompt_file: PathBuf,
    /// Tone, e.g. "warm and brief".
    #[arg(long)]
    tone: Option<String>,
    /// Model for this tenant (else OPENAI_MODEL).
    #[arg(long)]
    model: Option<String>,
    /// Make it the tenant's default template.
    #[arg(long)]
    default: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum FaqCommand {
    /// Import entries from .csv (header question,answer,category,priority,data_type and an
    /// optional phrasings column, `|`-separated), .json or .jsonl (phrasings: an array).
    Import(FaqImport),
    /// List a tenant's entries, with how many phrasings each has.
    List(FaqList),
    /// Ask the AI model, once per FAQ or canned entry, for other ways customers ask it
    /// (English, Swahili, Sheng, shorthand); stores the new ones as generated phrasings.
    Expand(FaqExpand),
}

#[derive(Args)]
struct FaqExpand {
    #[arg(long)]
    tenant: String,
    /// Show what would be added without storing anything.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct FaqImport {
    #[arg(long)]
    tenant: String,
    file: PathBuf,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct FaqList {
    #[arg(long)]
    tenant: String,
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo's transcript is the output; its per-message log lines would bury it.
    // Set before any thread exists (the runtime is built below).
    if matches!(cli.command, Command::Demo) && std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", "warn");
    }
    // A laptop run that uses no AWS service need not probe EC2's metadata service for a region
    // (two warnings and a delay at every start).
    let uses_aws = [
        "REPLY_QUEUE_URL",
        "PLATFORM_SECRET_ID",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ]
    .iter()
    .any(|k| std::env::var_os(k).is_some())
        || std::env::var("KEY_PROVIDER").is_ok_and(|v| v == "aws");
    if matches!(cli.command, Command::Serve(_)) && !uses_aws {
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    }
    alphadome::telemetry::init(alphadome::telemetry::LogFormat::Text);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line: the whole context chain, which never holds a secret.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
