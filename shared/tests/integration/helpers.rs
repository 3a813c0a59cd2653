//! Shared set-up: services, seeded tenants, key providers.

use alphadome::domain::{PhoneNumber, PhoneNumberId};
use alphadome::keys::{KeyBackend, KeyProvider};
use alphadome::store::{NewEntry, NewTemplate, NewTenant, Store, TenantSummary};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use secrecy::SecretString;
use std::path::PathBuf;
use std::time::Duration;

/// moto's address; tests fail (not skip) when it is down: run scripts/test-services.sh.
pub fn aws_endpoint() -> String {
    std::env::var("ALPHADOME_TEST_AWS_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:5000".into())
}

/// The test database `db` through PgBouncer in transaction mode (scripts/test-services.sh).
pub fn bouncer_url(db: &str) -> SecretString {
    let base = std::env::var("ALPHADOME_TEST_PGBOUNCER")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:6432".into());
    SecretString::from(format!("{base}/{db}"))
}

pub async fn aws_config() -> SdkConfig {
    alphadome::aws::loader()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(aws_endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .load()
        .await
}

/// A fresh, private key directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("alphadome-test-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn local_keys() -> KeyProvider {
    KeyProvider::new(
        KeyBackend::LocalDir(temp_dir("keys")),
        Duration::from_secs(60),
    )
}

pub fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

pub struct Seeded {
    pub a: TenantSummary,
    pub b: TenantSummary,
}

pub fn new_tenant(name: &str, phone: &str, pnid: &str, token: &str) -> NewTenant {
    NewTenant {
        client_name: name.into(),
        client_phone: PhoneNumber::parse(phone).unwrap(),
        phone_number_id: PhoneNumberId::parse(pnid).unwrap(),
        contact_name: Some("Owner".into()),
        brand_id: None,
        whatsapp_token: Some(secret(token)),
        ai_api_key: Some(secret(&format!("sk-{name}-key"))),
        meta_app_secret: None,
        escalation_phone: Some(PhoneNumber::parse(phone).unwrap()),
        max_messages_per_hour: Some(100),
    }
}

pub fn entry(q: &str, a: &str) -> NewEntry {
    NewEntry {
        question: q.into(),
        answer: a.into(),
        category: None,
        priority: 0,
        data_type: alphadome::domain::DataType::faq(),
    }
}

/// Two businesses, each with a template, knowledge and one logged conversation row.
pub async fn seed_two_tenants(store: &Store, keys: &KeyProvider) -> Seeded {
    let a = store
        .create_tenant(
            keys,
            new_tenant(
                "Kassangas Music Shop",
                "254702245555",
                "100000000001",
                "EAA-token-A",
            ),
        )
        .await
        .unwrap();
    let b = store
        .create_tenant(
            keys,
            new_tenant(
                "Mama Njeri Salon",
                "254711000222",
                "100000000002",
                "EAA-token-B",
            ),
        )
        .await
        .unwrap();
    for (t, prompt, q) in [
        (&a, "You are Kassangas", "What are your hours?"),
        (&b, "You are the salon", "Do you do braids?"),
    ] {
        store
            .set_template(
                t.id,
                &NewTemplate {
                    name: "default".into(),
                    system_prompt: prompt.into(),
                    tone: Some("warm".into()),
                    model: None,
                    is_default: true,
                },
            )
            .await
            .unwrap();
        store
            .import_entries(t.id, &[entry(q, "Yes")])
            .await
            .unwrap();
        let mut tx = store.pool().begin().await.unwrap();
        sqlx::query(
            "insert into public.conversations (brand_id, bot_tenant_id, direction, message_text, wa_message_id, status)
             values ($1, $2, 'incoming', 'hello', $3, 'received')",
        )
        .persistent(false)
        .bind(t.brand_id)
        .bind(t.id)
        .bind(format!("wamid.seed.{}", t.id))
        .execute(&mut *tx)
        .await
        .unwrap();
        // Counted as the pipeline counts a received message.
        sqlx::query(
            "insert into alphadome.bot_usage_daily (bot_tenant_id, day, counts)
             values ($1, (now() at time zone 'utc')::date, '{\"received\": 1}')",
        )
        .persistent(false)
        .bind(t.id)
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    Seeded { a, b }
}
