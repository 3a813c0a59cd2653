//! The store against real PostgreSQL: onboarding, context in one round trip, imports,
//! rotation, legacy import.

use crate::helpers::{entry, local_keys, new_tenant, secret, seed_two_tenants};
use alphadome::crypto::SecretColumn;
use alphadome::domain::PhoneNumberId;
use alphadome::store::{Store, StoreError};
use secrecy::ExposeSecret;
use sqlx::PgPool;

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_tenants_whole_context_loads_in_one_query_with_its_own_data_only(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let keys = local_keys();
    let s = seed_two_tenants(&store, &keys).await;
    let ctx = store.load_tenant_context(s.a.id).await.unwrap().unwrap();
    assert_eq!(ctx.tenant.client_name, "Kassangas Music Shop");
    assert_eq!(
        ctx.template.as_ref().unwrap().system_prompt,
        "You are Kassangas"
    );
    assert_eq!(ctx.training.len(), 1);
    assert_eq!(ctx.training[0].question, "What are your hours?");
    assert_eq!(ctx.settings.as_ref().unwrap().max_messages_per_hour, 100);
    // The sealed token opens with the tenant's ring, and only for this tenant.
    let ring = keys.ring(s.a.id).await.unwrap();
    let token = ring
        .decrypt(
            SecretColumn::WhatsappAccessToken,
            ctx.tenant.whatsapp_access_token.as_ref().unwrap(),
        )
        .unwrap();
    assert_eq!(token.expose_secret(), "EAA-token-A");
    let ring_b = keys.ring(s.b.id).await.unwrap();
    assert!(ring_b
        .decrypt(
            SecretColumn::WhatsappAccessToken,
            ctx.tenant.whatsapp_access_token.as_ref().unwrap()
        )
        .is_err());
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn tokens_are_stored_as_ciphertext_never_plaintext(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let s = seed_two_tenants(&store, &local_keys()).await;
    let raw: String =
        sqlx::query_scalar("select whatsapp_access_token from alphadome.bot_tenants where id = $1")
            .bind(s.a.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(raw.starts_with("v1."));
    assert!(!raw.contains("EAA-token-A"));
    // The schema itself refuses plaintext.
    let err = sqlx::query(
        "update alphadome.bot_tenants set whatsapp_access_token = 'EAA-plain token' where id = $1",
    )
    .bind(s.a.id)
    .execute(&pool)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("check constraint"));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_duplicate_phone_number_id_is_a_clear_conflict_and_leaves_nothing_behind(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let keys = local_keys();
    store
        .create_tenant(&keys, new_tenant("A", "254700000001", "555000111", "t1"))
        .await
        .unwrap();
    let err = store
        .create_tenant(&keys, new_tenant("B", "254700000002", "555000111", "t2"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("phone_number_id")),
        "{err}"
    );
    let brands: i64 = sqlx::query_scalar("select count(*) from public.brands")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(brands, 1, "the failed onboarding's brand was rolled back");
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_tenant_is_found_by_id_or_phone_number_id_and_routes_through_the_definer_function(
    pool: PgPool,
) {
    let store = Store::from_pool(pool.clone());
    let s = seed_two_tenants(&store, &local_keys()).await;
    assert_eq!(
        store.find_tenant(&s.b.id.to_string()).await.unwrap(),
        s.b.id
    );
    assert_eq!(store.find_tenant("100000000002").await.unwrap(), s.b.id);
    assert!(matches!(
        store.find_tenant("999").await,
        Err(StoreError::NotFound(_))
    ));
    let route = store
        .resolve_tenant(&PhoneNumberId::parse("100000000001").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(route.tenant_id, s.a.id);
    assert_eq!(route.brand_id, s.a.brand_id);
    assert!(store
        .resolve_tenant(&PhoneNumberId::parse("100000000009").unwrap())
        .await
        .unwrap()
        .is_none());

    // The functions' role reaches another tenant's route only through that function.
    let mut tx = store.begin_for_tenant(s.a.id).await.unwrap();
    let other: Option<uuid::Uuid> =
        sqlx::query_scalar("select bot_tenant_id from alphadome.resolve_tenant('100000000002')")
            .fetch_optional(&mut *tx)
            .await
            .unwrap();
    assert_eq!(other, Some(s.b.id.0));
    let direct: Option<uuid::Uuid> = sqlx::query_scalar(
        "select id from alphadome.bot_tenants where whatsapp_phone_number_id = '100000000002'",
    )
    .fetch_optional(&mut *tx)
    .await
    .unwrap();
    assert_eq!(direct, None);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn reimporting_updates_entries_instead_of_duplicating_them(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let s = seed_two_tenants(&store, &local_keys()).await;
    let out = store
        .import_entries(
            s.a.id,
            &[
                entry("What are your hours?", "Mon-Sat 9-6"),
                entry("Do you deliver?", "Yes"),
            ],
        )
        .await
        .unwrap();
    assert_eq!((out.inserted, out.updated), (1, 1));
    let entries = store.list_entries(s.a.id).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().any(|e| e.answer == "Mon-Sat 9-6"));
    assert_eq!(store.list_entries(s.b.id).await.unwrap().len(), 1);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_new_default_template_replaces_the_old_default(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let s = seed_two_tenants(&store, &local_keys()).await;
    let t = alphadome::store::NewTemplate {
        name: "holiday".into(),
        system_prompt: "Holiday hours".into(),
        tone: None,
        model: None,
        is_default: true,
    };
    store.set_template(s.a.id, &t).await.unwrap();
    let defaults: Vec<String> = sqlx::query_scalar(
        "select template_name from alphadome.bot_templates where bot_tenant_id = $1 and is_default",
    )
    .bind(s.a.id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(defaults, vec!["holiday".to_string()]);
    let ctx = store.load_tenant_context(s.a.id).await.unwrap().unwrap();
    assert_eq!(ctx.template.unwrap().system_prompt, "Holiday hours");
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn key_rotation_reseals_every_secret_and_old_versions_keep_opening_until_retired(
    pool: PgPool,
) {
    let store = Store::from_pool(pool.clone());
    let keys = local_keys();
    let s = seed_two_tenants(&store, &keys).await;
    let before: String =
        sqlx::query_scalar("select ai_api_key from alphadome.bot_tenants where id = $1")
            .bind(s.a.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    let v = store.rotate_tenant_key(&keys, s.a.id, false).await.unwrap();
    assert_eq!(v, 2);
    let ctx = store.load_tenant_context(s.a.id).await.unwrap().unwrap();
    assert_eq!(ctx.tenant.key_version, 2);
    let ring = keys.ring(s.a.id).await.unwrap();
    let token = ctx.tenant.whatsapp_access_token.unwrap();
    assert!(token.starts_with("v2."));
    assert_eq!(
        ring.decrypt(SecretColumn::WhatsappAccessToken, &token)
            .unwrap()
            .expose_secret(),
        "EAA-token-A"
    );
    // A row read before the rotation (e.g. in a warm cache) still opens.
    assert_eq!(
        ring.decrypt(SecretColumn::AiApiKey, &before)
            .unwrap()
            .expose_secret(),
        "sk-Kassangas Music Shop-key"
    );
    // Finishing the rotation retires version 1.
    store.rotate_tenant_key(&keys, s.a.id, true).await.unwrap();
    let ring = keys.ring(s.a.id).await.unwrap();
    assert!(ring.decrypt(SecretColumn::AiApiKey, &before).is_err());
    let after: String =
        sqlx::query_scalar("select ai_api_key from alphadome.bot_tenants where id = $1")
            .bind(s.a.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        ring.decrypt(SecretColumn::AiApiKey, &after)
            .unwrap()
            .expose_secret(),
        "sk-Kassangas Music Shop-key"
    );
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn replacing_a_token_clears_the_needs_refresh_flag(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let keys = local_keys();
    let s = seed_two_tenants(&store, &keys).await;
    sqlx::query("update alphadome.bot_tenants set needs_token_refresh = true where id = $1")
        .bind(s.a.id)
        .execute(&pool)
        .await
        .unwrap();
    store
        .set_tenant_secret(
            &keys,
            s.a.id,
            SecretColumn::WhatsappAccessToken,
            &secret("EAA-new"),
        )
        .await
        .unwrap();
    let t = store.tenant_summary(s.a.id).await.unwrap();
    assert!(!t.needs_token_refresh);
    let ctx = store.load_tenant_context(s.a.id).await.unwrap().unwrap();
    let ring = keys.ring(s.a.id).await.unwrap();
    let tok = ring
        .decrypt(
            SecretColumn::WhatsappAccessToken,
            &ctx.tenant.whatsapp_access_token.unwrap(),
        )
        .unwrap();
    assert_eq!(tok.expose_secret(), "EAA-new");
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn the_legacy_configuration_becomes_a_tenant_that_keeps_its_brand_and_history(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let keys = local_keys();
    let brand = uuid::Uuid::parse_str("1af71403-0000-4000-8000-000000000001").unwrap();
    sqlx::query("insert into public.brands (id, name) values ($1, 'Kassangas')")
        .bind(brand)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("insert into public.conversations (brand_id, direction, message_text) values ($1, 'incoming', 'old')")
        .bind(brand)
        .execute(&pool)
        .await
        .unwrap();
    let env = std::collections::HashMap::from([
        ("WHATSAPP_TOKEN", "EAA-legacy-token"),
        ("WHATSAPP_PHONE_NUMBER_ID", "868405499681303"),
        ("OPENAI_API_KEY", "sk-legacy"),
        ("DEFAULT_BRAND_ID", "1af71403-0000-4000-8000-000000000001"),
    ]);
    let legacy =
        alphadome::legacy::LegacyConfig::from_lookup(|k| env.get(k).map(|v| v.to_string()))
            .unwrap();
    let out = alphadome::legacy::import_legacy_tenant(
        &store,
        &keys,
        legacy,
        "Kassangas Music Shop".into(),
        alphadome::domain::PhoneNumber::parse("254702245555").unwrap(),
        Some("Gideon".into()),
    )
    .await
    .unwrap();
    assert_eq!(out.tenant.brand_id.0, brand);
    assert_eq!(out.conversations_adopted, 1);
    assert_eq!(
        store.find_tenant("868405499681303").await.unwrap(),
        out.tenant.id
    );
    let ctx = store
        .load_tenant_context(out.tenant.id)
        .await
        .unwrap()
        .unwrap();
    let ring = keys.ring(out.tenant.id).await.unwrap();
    let key = ring
        .decrypt(SecretColumn::AiApiKey, &ctx.tenant.ai_api_key.unwrap())
        .unwrap();
    assert_eq!(key.expose_secret(), "sk-legacy");

    let missing = alphadome::legacy::LegacyConfig::from_lookup(|_| None).unwrap_err();
    assert!(missing.to_string().contains("WHATSAPP_TOKEN"));
}
