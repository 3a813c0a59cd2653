//! `alphadome admin token`: development sign-in tokens for the owners' dashboard, only where
//! Supabase is not configured, signed by a key kept in a private file and never printed.

use alphadome::admin::auth::{DevKey, Verifier};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("alphadome-admin-token-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn admin_token(dir: &Path, args: &[&str], supabase_url: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_alphadome"));
    cmd.args(["admin", "token"])
        .args(args)
        .env("LOCAL_KEY_DIR", dir.join("keys"))
        .env("KEY_PROVIDER", "local")
        .env_remove("SUPABASE_URL");
    if let Some(url) = supabase_url {
        cmd.env("SUPABASE_URL", url);
    }
    cmd.output().unwrap()
}

#[tokio::test]
async fn admin_token_prints_a_development_token_that_only_its_key_verifies() {
    let dir = temp_dir();
    let brand = uuid::Uuid::new_v4();
    let brand_arg = brand.to_string();
    let first = admin_token(
        &dir,
        &[
            "--brand",
            &brand_arg,
            "--email",
            "gideon@example.com",
            "--ttl",
            "2h",
        ],
        None,
    );
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let token = String::from_utf8(first.stdout).unwrap().trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "one JWT on stdout: {token}");

    let key_path = dir.join("dev-jwt.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is readable by its owner only");
    }
    let secret = std::fs::read_to_string(&key_path).unwrap();
    assert!(!token.contains(secret.trim()));
    assert!(!String::from_utf8_lossy(&first.stderr).contains(secret.trim()));

    let verifier = Verifier::development(DevKey::load_or_create(&key_path).unwrap());
    let owner = verifier.verify(&token).await.unwrap();
    assert_eq!(owner.brand_id, Some(brand));
    assert_eq!(owner.email.as_deref(), Some("gideon@example.com"));
    let exp = owner.claims["exp"].as_i64().unwrap() - chrono::Utc::now().timestamp();
    assert!((7000..=7200).contains(&exp), "2h lifetime, got {exp}s");

    // A second run keeps the same key.
    let second = admin_token(&dir, &["--brand", &brand_arg], None);
    let token2 = String::from_utf8(second.stdout).unwrap();
    assert!(verifier.verify(token2.trim()).await.is_ok());
    // Another installation's key does not verify it.
    let other = temp_dir();
    admin_token(&other, &["--brand", &brand_arg], None);
    let stranger =
        Verifier::development(DevKey::load_or_create(&other.join("dev-jwt.key")).unwrap());
    assert!(stranger.verify(&token).await.is_err());
}

#[test]
fn admin_token_refuses_to_run_where_supabase_is_configured() {
    let dir = temp_dir();
    let out = admin_token(
        &dir,
        &["--brand", &uuid::Uuid::new_v4().to_string()],
        Some("https://ref.supabase.co"),
    );
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SUPABASE_URL is set"));
    assert!(!dir.join("dev-jwt.key").exists());
}

#[test]
fn admin_token_needs_a_tenant_or_a_brand() {
    let out = admin_token(&temp_dir(), &[], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tenant"));
}
