//! The operator's CLI end to end, as a new operator would use it: from an empty database to
//! two onboarded businesses with their FAQs, against the real PostgreSQL. Every output and
//! log line is checked for secrets.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Env {
    database_url: String,
    admin_url: String,
    db: String,
    dir: PathBuf,
    transcript: String,
}

impl Env {
    fn new() -> Self {
        let base = std::env::var("DATABASE_URL")
            .expect("DATABASE_URL must point at the test PostgreSQL (see README)");
        let (server, _) = base
            .rsplit_once('/')
            .expect("DATABASE_URL has a database path");
        let db = format!("alphadome_cli_{}", uuid::Uuid::new_v4().simple());
        let dir = std::env::temp_dir().join(&db);
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            database_url: format!("{server}/{db}"),
            admin_url: base.clone(),
            db,
            dir,
            transcript: String::new(),
        }
    }

    fn file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    fn run_with_stdin(&mut self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_alphadome"))
            .args(args)
            .env("DATABASE_URL", &self.database_url)
            .env("LOCAL_KEY_DIR", self.dir.join("keys"))
            .env("KEY_PROVIDER", "local")
            .env("RUST_LOG", "debug")
            .env_remove("OPENAI_API_KEY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        self.transcript
            .push_str(&String::from_utf8_lossy(&out.stdout));
        self.transcript
            .push_str(&String::from_utf8_lossy(&out.stderr));
        out
    }

    fn run(&mut self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None)
    }

    fn ok(&mut self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "alphadome {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&mut self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &self.admin_url,
                "-qc",
                &format!("drop database if exists {} with (force)", self.db),
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const TOKEN_A: &str = "EAAGkassangasSECRETtoken0001";
const TOKEN_B: &str = "EAAGsalonSECRETtoken0002";
const AI_KEY_A: &str = "sk-test-kassangas-SECRET-aikey-0001";

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn an_operator_sets_up_two_businesses_from_an_empty_database_and_no_secret_is_ever_printed() {
    let mut env = Env::new();
    let token_a = env.file("token_a.txt", &format!("{TOKEN_A}\n"));
    let ai_a = env.file("ai_a.txt", AI_KEY_A);
    let faq_a = env.file(
        "kassangas.csv",
        "question,answer,category,priority,data_type\n\
         What are your opening hours?,\"Monday to Saturday, 9 AM to 6 PM. Closed Sunday.\",hours,10,faq\n\
         Can I pay with M-Pesa?,Yes: Till 123456.,payments,8,faq\n\
         Hello,Karibu Kassangas Music Shop! How can we help?,greeting,1,canned\n",
    );
    let faq_b = env.file(
        "salon.csv",
        "question,answer,category,priority,data_type\nDo you do braids?,\"Yes, from KES 1,500.\",services,5,faq\n",
    );

    // From an empty server: migrate creates the database.
    assert!(env.ok(&["migrate"]).contains("up to date"));
    assert!(
        env.ok(&["migrate"]).contains("up to date"),
        "migrate is repeatable"
    );

    let a = env.json(&[
        "tenant",
        "add",
        "--name",
        "Kassangas Music Shop",
        "--client-phone",
        "+254 702 245 555",
        "--phone-number-id",
        "868405499681303",
        "--contact-name",
        "Gideon",
        "--whatsapp-token-file",
        p(&token_a),
        "--ai-key-file",
        p(&ai_a),
        "--escalation-phone",
        "254702245555",
        "--max-messages-per-hour",
        "150",
        "--json",
    ]);
    assert_eq!(a["client_name"], "Kassangas Music Shop");
    assert_eq!(a["has_whatsapp_token"], true);
    assert_eq!(a["has_ai_key"], true);
    assert_eq!(a["max_messages_per_hour"], 150);

    // The second business's token comes from stdin.
    let out = env.run_with_stdin(
        &[
            "tenant",
            "add",
            "--name",
            "Mama Njeri Salon",
            "--client-phone",
            "254711000222",
            "--phone-number-id",
            "100200300400",
            "--whatsapp-token-file",
            "-",
            "--json",
        ],
        Some(TOKEN_B),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(a["brand_id"], b["brand_id"]);

    let imported = env.json(&[
        "faq",
        "import",
        "--tenant",
        "868405499681303",
        p(&faq_a),
        "--json",
    ]);
    assert_eq!(imported["inserted"], 3);
    let imported = env.json(&[
        "faq",
        "import",
        "--tenant",
        b["id"].as_str().unwrap(),
        p(&faq_b),
        "--json",
    ]);
    assert_eq!(imported["inserted"], 1);

    let list_a = env.json(&["faq", "list", "--tenant", "868405499681303", "--json"]);
    let list_b = env.json(&["faq", "list", "--tenant", "100200300400", "--json"]);
    assert_eq!(list_a.as_array().unwrap().len(), 3);
    assert_eq!(list_b.as_array().unwrap().len(), 1);
    assert_eq!(list_b[0]["question"], "Do you do braids?");
    assert!(
        !list_a.to_string().contains("braids"),
        "A's list holds none of B's entries"
    );

    // `ask`: the answer policy as a dry run, per tenant.
    let ask = env.json(&[
        "ask",
        "--tenant",
        "868405499681303",
        "--json",
        "wat tym u open?",
    ]);
    assert_eq!(ask["source"], "faq");
    assert_eq!(ask["question"], "What are your opening hours?");
    assert!(ask["reply"].as_str().unwrap().contains("9 AM to 6 PM"));
    let ask = env.json(&[
        "ask",
        "--tenant",
        "100200300400",
        "--json",
        "wat tym u open?",
    ]);
    assert_ne!(
        ask["source"], "faq",
        "the salon has no hours entry, and never Kassangas's"
    );
    assert!(!ask["reply"].as_str().unwrap().contains("9 AM"));
    let ask = env.ok(&["ask", "--tenant", "868405499681303", "Naeza lipa na mpesa?"]);
    assert!(
        ask.contains("source:   faq") && ask.contains("Till 123456"),
        "{ask}"
    );

    let tenants = env.json(&["tenant", "list", "--json"]);
    assert_eq!(tenants.as_array().unwrap().len(), 2);
    let text = env.ok(&["tenant", "list"]);
    assert!(text.contains("Kassangas Music Shop") && text.contains("Mama Njeri Salon"));
    let shown = env.ok(&["tenant", "show", "868405499681303"]);
    assert!(shown.contains("whatsapp token:     set"));
    assert!(!shown.contains("702245"), "the client phone is masked");
    assert!(
        shown.contains("hand-over template: NONE - WARNING"),
        "without a template, notices may not arrive: {shown}"
    );
    let set = env.json(&[
        "tenant",
        "set-escalation-template",
        "868405499681303",
        "--name",
        "handover_notice",
        "--language",
        "en_US",
        "--json",
    ]);
    assert_eq!(set["escalation_template_name"], "handover_notice");
    let shown = env.ok(&["tenant", "show", "868405499681303"]);
    assert!(
        shown.contains("hand-over template: handover_notice (en_US)") && !shown.contains("WARNING"),
        "{shown}"
    );
    for bad in [["Handover Notice", "en"], ["handover_notice", "English"]] {
        let out = env.run(&[
            "tenant",
            "set-escalation-template",
            "868405499681303",
            "--name",
            bad[0],
            "--language",
            bad[1],
        ]);
        assert_ne!(out.status.code(), Some(0), "{bad:?}");
    }

    let shown = env.ok(&["tenant", "show", "868405499681303"]);
    assert!(
        shown.contains("voice notes:        on") && shown.contains("pictures to the AI: on"),
        "{shown}"
    );
    let set = env.json(&[
        "tenant",
        "set-media",
        "868405499681303",
        "--voice-notes",
        "off",
        "--json",
    ]);
    assert_eq!(set["voice_notes_enabled"], false);
    assert_eq!(set["pictures_enabled"], true, "a switch not given is kept");
    let shown = env.json(&["tenant", "show", "868405499681303", "--json"]);
    assert_eq!(shown["voice_notes_enabled"], false);
    assert_eq!(
        env.json(&["tenant", "show", "100200300400", "--json"])["voice_notes_enabled"],
        true,
        "the other business keeps its switch"
    );
    env.ok(&[
        "tenant",
        "set-media",
        "868405499681303",
        "--pictures",
        "off",
    ]);
    let shown = env.ok(&["tenant", "show", "868405499681303"]);
    assert!(
        shown.contains("voice notes:        off") && shown.contains("pictures to the AI: off"),
        "{shown}"
    );
    for bad in [
        vec!["tenant", "set-media", "868405499681303"],
        vec![
            "tenant",
            "set-media",
            "868405499681303",
            "--voice-notes",
            "yes",
        ],
    ] {
        assert_ne!(env.run(&bad).status.code(), Some(0), "{bad:?}");
    }

    env.ok(&["tenant", "disable", "100200300400"]);
    assert_eq!(
        env.json(&["tenant", "show", "100200300400", "--json"])["is_active"],
        false
    );
    env.ok(&["tenant", "enable", "100200300400"]);
    let rotated = env.json(&["tenant", "rotate-key", "868405499681303", "--json"]);
    assert_eq!(rotated["key_version"], 2);

    let prompt = env.file(
        "prompt.txt",
        "You are the friendly assistant of Kassangas Music Shop in Nairobi.",
    );
    env.ok(&[
        "template",
        "set",
        "--tenant",
        "868405499681303",
        "--name",
        "default",
        "--system-prompt-file",
        p(&prompt),
        "--default",
    ]);

    // Failures: non-zero exit, one line, nothing changed.
    let dup = env.run(&[
        "tenant",
        "add",
        "--name",
        "Copycat",
        "--client-phone",
        "254700999888",
        "--phone-number-id",
        "868405499681303",
    ]);
    assert!(!dup.status.success());
    let err = String::from_utf8_lossy(&dup.stderr);
    assert!(err.contains("phone_number_id already exists"), "{err}");

    let bad_csv = env.file(
        "bad.csv",
        "question,answer,category,priority,data_type\nA?,B,c,1,faq\nC?,D,e,soon,faq\n",
    );
    let bad = env.run(&["faq", "import", "--tenant", "868405499681303", p(&bad_csv)]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("line 3"));
    assert_eq!(
        env.json(&["faq", "list", "--tenant", "868405499681303", "--json"])
            .as_array()
            .unwrap()
            .len(),
        3
    );

    let bad_phone = env.run(&[
        "tenant",
        "add",
        "--name",
        "X",
        "--client-phone",
        "0702245555",
        "--phone-number-id",
        "5550001",
    ]);
    assert!(!bad_phone.status.success());
    assert!(String::from_utf8_lossy(&bad_phone.stderr).contains("country code"));

    // Secrets are never taken from argv: there is no flag for them.
    let argv_secret = env.run(&[
        "tenant",
        "add",
        "--name",
        "X",
        "--client-phone",
        "254700000009",
        "--phone-number-id",
        "5550002",
        "--whatsapp-token",
        TOKEN_A,
    ]);
    assert!(!argv_secret.status.success());

    for secret in [TOKEN_A, TOKEN_B, AI_KEY_A] {
        let echoed = env.transcript.matches(secret).count();
        // The one allowed occurrence: clap echoing the rejected argv flag above.
        let allowed =
            usize::from(secret == TOKEN_A && env.transcript.contains("unexpected argument"));
        assert!(echoed <= allowed, "a secret appeared in CLI output or logs");
    }
    let key_files: Vec<_> = std::fs::read_dir(env.dir.join("keys")).unwrap().collect();
    assert_eq!(key_files.len(), 2, "one data key file per tenant");
}

#[test]
fn a_missing_database_url_names_the_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_alphadome"))
        .args(["tenant", "list"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DATABASE_URL is not set"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["migrate", "--help"],
        vec!["tenant", "--help"],
        vec!["tenant", "add", "--help"],
        vec!["tenant", "list", "--help"],
        vec!["tenant", "rotate-key", "--help"],
        vec!["tenant", "set-escalation-template", "--help"],
        vec!["template", "set", "--help"],
        vec!["faq", "import", "--help"],
        vec!["faq", "list", "--help"],
        vec!["faq", "expand", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_alphadome"))
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

#[test]
fn usage_prints_one_object_per_tenant_per_day_and_budgets_show_in_tenant_show() {
    let mut env = Env::new();
    env.ok(&["migrate"]);
    let a = env.json(&[
        "tenant",
        "add",
        "--name",
        "Kassangas Music Shop",
        "--client-phone",
        "254702245555",
        "--phone-number-id",
        "868405499681303",
        "--json",
    ]);
    let id = a["id"].as_str().unwrap().to_owned();
    // Two days of counts, as the pipeline writes them.
    let sql = format!(
        "insert into alphadome.bot_usage_daily (bot_tenant_id, day, counts) values
           ('{id}', current_date - 1, '{{\"received\": 3, \"reply:faq\": 2, \"reply:ai\": 1, \"ai_calls\": 1, \"ai_prompt_tokens\": 1000000, \"ai_completion_tokens\": 0, \"messages_out\": 3}}'),
           ('{id}', current_date, '{{\"received\": 1, \"handovers\": 1, \"failed_sends\": 1, \"failed:131047\": 1, \"billable:utility\": 2, \"outbound:utility\": 2}}')"
    );
    let out = Command::new("psql")
        .args([&env.database_url, "-qc", &sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let rows = env.json(&["usage", "--json"]);
    let rows = rows.as_array().expect("an array");
    assert_eq!(rows.len(), 2, "one per tenant per day: {rows:?}");
    for key in [
        "tenant_id",
        "day",
        "received",
        "replies",
        "handovers",
        "cap_hits",
        "opt_outs",
        "ai_calls",
        "ai_prompt_tokens",
        "ai_completion_tokens",
        "failed_sends",
        "est_cost_usd",
    ] {
        assert!(rows[0].get(key).is_some(), "{key} missing: {}", rows[0]);
    }
    for key in [
        "faq",
        "canned",
        "ai",
        "fallback",
        "escalation",
        "person",
        "control",
    ] {
        assert!(
            rows[0]["replies"].get(key).is_some(),
            "replies.{key} missing"
        );
    }
    assert_eq!(rows[0]["tenant_id"], id.as_str());
    assert_eq!(rows[0]["received"], 3);
    assert_eq!(rows[0]["replies"]["faq"], 2);
    // 1M prompt tokens at the default 0.15 USD per million.
    assert!((rows[0]["est_cost_usd"].as_f64().unwrap() - 0.15).abs() < 1e-9);
    // 2 billable utility messages at the default 0.004.
    assert!((rows[1]["est_cost_usd"].as_f64().unwrap() - 0.008).abs() < 1e-9);
    assert_eq!(rows[1]["failed_sends"], 1);

    // The operator changes a price; the estimate follows.
    let out = Command::new("psql")
        .args([
            &env.database_url,
            "-qc",
            "update alphadome.platform_prices set usd = 1 where item = 'ai_prompt_tokens'",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let rows = env.json(&["usage", "--tenant", "868405499681303", "--json"]);
    assert!((rows[0]["est_cost_usd"].as_f64().unwrap() - 1.0).abs() < 1e-9);

    let csv = env.ok(&["usage", "--csv"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("tenant_id,day,received,"), "{csv}");
    assert_eq!(lines.len(), 4, "header, two days, one total: {csv}");
    assert!(lines[3].contains(",total,4,"), "{csv}");
    let text = env.ok(&["usage"]);
    assert!(text.contains("estimates"), "{text}");
    assert!(
        env.run(&["usage", "--from", "2026-02-10", "--to", "2026-02-01"])
            .status
            .code()
            != Some(0)
    );

    let listed = env.json(&["tenant", "list", "--json"]);
    assert_eq!(listed[0]["messages_7d"], 3 + 3 + 1);
    assert_eq!(listed[0]["ai_tokens_7d"], 1_000_000);
    assert!(env.ok(&["tenant", "list"]).contains("msgs 7d"));

    let set = env.json(&[
        "tenant",
        "set-budget",
        &id,
        "--ai-tokens",
        "1000000",
        "--messages",
        "100",
        "--json",
    ]);
    assert_eq!(set["budget"]["monthly_ai_tokens"], 1_000_000);
    let set = env.json(&["tenant", "set-budget", &id, "--messages", "0", "--json"]);
    assert_eq!(
        set["budget"]["monthly_ai_tokens"], 1_000_000,
        "a flag not given keeps its budget"
    );
    assert!(
        set["budget"]["monthly_messages"].is_null(),
        "0 removes a limit"
    );
    let shown = env.ok(&["tenant", "show", &id]);
    assert!(shown.contains("monthly budget:"), "{shown}");
    // Whether this month's use (yesterday's row may be last month) reached the budget.
    let status = env.json(&["tenant", "show", &id, "--json"]);
    assert_eq!(
        status["budget"]["ai_stopped"],
        status["budget"]["percent"].as_i64().unwrap() >= 100
    );
    if status["budget"]["ai_stopped"] == true {
        assert!(shown.contains("AI STOPPED"), "{shown}");
    }
    assert!(shown.contains("last failed sends"), "{shown}");
}
