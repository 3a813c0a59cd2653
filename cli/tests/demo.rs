//! `alphadome demo`, the first-run command, as a new user runs it: the real binary against a
//! fresh PostgreSQL database, twice (it must be repeatable), and without a database at all.

use std::path::PathBuf;
use std::process::{Command, Output};

struct FreshDatabase {
    url: String,
    admin_url: String,
    name: String,
    keys: PathBuf,
}

impl FreshDatabase {
    fn new() -> Self {
        let admin_url = std::env::var("DATABASE_URL")
            .expect("DATABASE_URL must point at the test PostgreSQL (see README)");
        let (server, _) = admin_url.rsplit_once('/').expect("a database path");
        let name = format!("alphadome_demo_{}", uuid::Uuid::new_v4().simple());
        let keys = std::env::temp_dir().join(&name);
        Self {
            url: format!("{server}/{name}"),
            admin_url: admin_url.clone(),
            name,
            keys,
        }
    }

    fn demo(&self) -> Output {
        Command::new(env!("CARGO_BIN_EXE_alphadome"))
            .arg("demo")
            .env("DATABASE_URL", &self.url)
            .env("KEY_PROVIDER", "local")
            .env("LOCAL_KEY_DIR", &self.keys)
            .env_remove("OPENAI_API_KEY")
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &self.admin_url,
                "-qc",
                &format!("drop database if exists {} with (force)", self.name),
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.keys);
    }
}

fn check_transcript(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    for business in ["Kassangas Music Shop", "Nyota Beauty Salon"] {
        assert!(stdout.contains(business), "{business} missing:\n{stdout}");
    }
    assert!(
        stdout.matches("[faq]").count() >= 10,
        "FAQ answers missing:\n{stdout}"
    );
    for expected in [
        "We are open Monday to Saturday, 9 AM to 6 PM",
        "Buy Goods Till 512345",
        "knotless braids from KES 3,500",
        "[canned]",
        "[escalation]",
        "[control]",
        "rows in public.conversations",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing:\n{stdout}");
    }
    let all = format!("{stdout}{stderr}");
    assert!(
        !all.contains("demo-placeholder-whatsapp-token"),
        "a token was printed"
    );
    stdout
}

#[test]
fn the_demo_answers_customers_of_both_businesses_from_their_faqs_and_runs_again() {
    let db = FreshDatabase::new();
    let first = check_transcript(&db.demo());
    assert!(first.contains("11 incoming + 13 outgoing from this run"));
    // Again: the businesses exist, the earlier customers said STOP; the new run still answers.
    let second = check_transcript(&db.demo());
    assert!(second.contains("11 incoming + 13 outgoing from this run"));
    assert!(second.contains("(22 incoming, 26 outgoing in all)"));
}

#[test]
fn the_demo_without_a_database_url_says_in_one_line_how_to_set_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_alphadome"))
        .arg("demo")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("export DATABASE_URL=postgres://"),
        "{stderr}"
    );
}

#[test]
fn the_demo_with_an_unreachable_database_fails_with_a_clear_reason() {
    let out = Command::new(env!("CARGO_BIN_EXE_alphadome"))
        .arg("demo")
        .env(
            "DATABASE_URL",
            "postgres://postgres:hunter2@127.0.0.1:9/none",
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach the database server"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "the password was printed");
}
