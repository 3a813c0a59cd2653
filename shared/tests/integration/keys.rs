//! Data keys in AWS Secrets Manager (moto): one secret per tenant under the prefix, cached,
//! rotation picked up by a warm process.

use crate::helpers::{aws_config, seed_two_tenants};
use alphadome::crypto::SecretColumn;
use alphadome::keys::{KeyBackend, KeyProvider};
use alphadome::store::Store;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use std::time::Duration;

async fn aws_keys(prefix: &str) -> (KeyProvider, aws_sdk_secretsmanager::Client) {
    let client = aws_sdk_secretsmanager::Client::new(&aws_config().await);
    let provider = KeyProvider::new(
        KeyBackend::SecretsManager {
            client: client.clone(),
            prefix: prefix.to_owned(),
        },
        Duration::from_secs(300),
    );
    (provider, client)
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn onboarding_with_secrets_manager_creates_one_secret_per_tenant_under_the_prefix(
    pool: PgPool,
) {
    let prefix = format!("alphadome-test/{}/", uuid::Uuid::new_v4());
    let (keys, client) = aws_keys(&prefix).await;
    let store = Store::from_pool(pool.clone());
    let s = seed_two_tenants(&store, &keys).await;
    for t in [&s.a, &s.b] {
        let secret = client
            .get_secret_value()
            .secret_id(format!("{prefix}{}", t.id))
            .send()
            .await
            .expect("the tenant's data key secret exists");
        let doc: serde_json::Value = serde_json::from_str(secret.secret_string().unwrap()).unwrap();
        assert_eq!(doc["current"], 1);
    }
    // A cold process (new provider, empty cache) opens the token from Secrets Manager.
    let (cold, _) = aws_keys(&prefix).await;
    let ctx = store.load_tenant_context(s.b.id).await.unwrap().unwrap();
    let ring = cold.ring(s.b.id).await.unwrap();
    let tok = ring
        .decrypt(
            SecretColumn::WhatsappAccessToken,
            &ctx.tenant.whatsapp_access_token.unwrap(),
        )
        .unwrap();
    assert_eq!(tok.expose_secret(), "EAA-token-B");
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_warm_process_picks_up_a_rotation_done_elsewhere(pool: PgPool) {
    let prefix = format!("alphadome-test/{}/", uuid::Uuid::new_v4());
    let (operator_keys, _) = aws_keys(&prefix).await;
    let store = Store::from_pool(pool.clone());
    let s = seed_two_tenants(&store, &operator_keys).await;

    let (warm, _) = aws_keys(&prefix).await;
    let v1 = warm.ring(s.a.id).await.unwrap();
    assert!(!v1.has_version(2));

    store
        .rotate_tenant_key(&operator_keys, s.a.id, false)
        .await
        .unwrap();
    let ctx = store.load_tenant_context(s.a.id).await.unwrap().unwrap();
    let env = ctx.tenant.whatsapp_access_token.unwrap();
    let version = alphadome::crypto::envelope_version(&env).unwrap();
    assert_eq!(version, 2);
    // The warm cache still holds version 1 only; asking for version 2 re-reads once.
    let ring = warm.ring_with_version(s.a.id, version).await.unwrap();
    assert_eq!(
        ring.decrypt(SecretColumn::WhatsappAccessToken, &env)
            .unwrap()
            .expose_secret(),
        "EAA-token-A"
    );
}
