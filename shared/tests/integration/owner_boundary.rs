//! The tenant boundary for business owners (issue 11), tried as an attacker would: a signed-in
//! admin of brand A with a JWT as Supabase issues it (role `authenticated`, brand in
//! `app_metadata`), on a database where both businesses have rows in every table. Also the
//! functions' brand check, forced RLS with a non-superuser owner, and key rotation racing
//! itself and `set-secret`.

use crate::helpers::{local_keys, secret, seed_two_tenants, temp_dir, Seeded};
use crate::rls::{as_admin, refused};
use alphadome::crypto::{envelope_version, SecretColumn};
use alphadome::domain::{PhoneNumberId, TenantId};
use alphadome::keys::{KeyBackend, KeyProvider};
use alphadome::store::{BeginInbound, Store};
use secrecy::ExposeSecret;
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::time::Duration;

/// Every table that holds a tenant's data, and public.brands.
const TABLES: [&str; 10] = [
    "alphadome.bot_tenants",
    "alphadome.bot_templates",
    "alphadome.bot_training_data",
    "alphadome.bot_control_settings",
    "alphadome.bot_usage_counters",
    "public.conversations",
    "public.users",
    "public.subscriptions",
    "public.brands",
    "alphadome.pending_statuses",
];

/// A's customer and B's customer (one each, written by the pipeline).
const A_CUSTOMER: &str = "254700000001";
const B_CUSTOMER: &str = "254799000002";

/// Both businesses with rows in every table: tenant, template, knowledge, settings (CLI), one
/// seeded conversation, and one inbound message through the pipeline (customer,
/// subscription, claimed conversation, hourly counter).
async fn seed_every_table(pool: &PgPool) -> Seeded {
    let store = Store::from_pool(pool.clone());
    let s = seed_two_tenants(&store, &local_keys()).await;
    for (t, phone) in [(&s.a, A_CUSTOMER), (&s.b, B_CUSTOMER)] {
        let wamid = format!("wamid.owner-boundary.{}", t.id);
        let out = store
            .begin_inbound_batch(t.id, 120, 6, &[inbound(&wamid, phone)])
            .await
            .unwrap();
        assert!(out[0].claimed);
        // A delivery status for a reply whose wamid is not recorded yet (kept until it is).
        let early = alphadome::webhook::StatusUpdate {
            wa_message_id: format!("wamid.owner-boundary.out.{}", t.id),
            status: "delivered".to_owned().into(),
            timestamp: 1,
            recipient_id: Some(phone.into()),
            recipient_user_id: None,
            error_code: None,
            error_title: None,
            pricing_category: None,
            pricing_billable: None,
            pricing_type: None,
            reply_id: None,
        };
        let kept = store.apply_statuses(t.id, &[&early]).await.unwrap();
        assert!(kept[0].pending);
    }
    for table in TABLES {
        if table == "public.brands" {
            continue;
        }
        for t in [&s.a, &s.b] {
            let column = if table == "alphadome.bot_tenants" {
                "id"
            } else {
                "bot_tenant_id"
            };
            let n: i64 =
                sqlx::query_scalar(&format!("select count(*) from {table} where {column} = $1"))
                    .bind(t.id)
                    .fetch_one(pool)
                    .await
                    .unwrap();
            assert!(n > 0, "{table} has no row for tenant {}", t.id);
        }
    }
    s
}

fn inbound<'a>(wamid: &'a str, phone: &'a str) -> BeginInbound<'a> {
    BeginInbound {
        wa_message_id: wamid,
        attempt: uuid::Uuid::new_v4(),
        phone: Some(phone),
        user_id: None,
        profile_name: Some("Customer"),
        message_type: "text",
        text: Some("hello"),
        intent: Some("start"),
        count_reply: true,
        with_history: false,
        foreseen: None,
    }
}

/// A transaction as brand A's owner, claims exactly as Supabase issues them.
async fn as_owner(pool: &PgPool, s: &Seeded) -> Transaction<'static, Postgres> {
    as_admin(
        pool,
        serde_json::json!({
            "sub": "00000000-0000-4000-8000-00000000000a",
            "role": "authenticated",
            "app_metadata": {"brand_id": s.a.brand_id, "provider": "email"},
            "user_metadata": {}
        }),
    )
    .await
}

/// Runs one statement as A's owner in its own transaction (rolled back) and returns the result.
async fn try_as_owner(
    pool: &PgPool,
    s: &Seeded,
    sql: &str,
) -> Result<sqlx::postgres::PgQueryResult, sqlx::Error> {
    let mut tx = as_owner(pool, s).await;
    sqlx::query(sql).execute(&mut *tx).await
}

async fn scalar_i64(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_owner_cannot_insert_a_tenant(pool: PgPool) {
    let s = seed_every_table(&pool).await;
    // A number not yet registered (the legacy number, or one being onboarded) under A's brand.
    let insert = try_as_owner(
        &pool,
        &s,
        &format!(
            "insert into alphadome.bot_tenants (client_name, client_phone, brand_id, whatsapp_phone_number_id)
             values ('Hijacker', '254733000999', '{}', '100000000099')",
            s.a.brand_id
        ),
    )
    .await;
    assert!(refused(&insert), "{insert:?}");
    assert_eq!(
        scalar_i64(&pool, "select count(*) from alphadome.bot_tenants").await,
        2
    );
    let pnid = PhoneNumberId::parse("100000000099").unwrap();
    let store = Store::from_pool(pool.clone());
    assert!(store.resolve_tenant(&pnid).await.unwrap().is_none());
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_owner_cannot_move_its_tenant_to_another_number(pool: PgPool) {
    let s = seed_every_table(&pool).await;
    for set in [
        "whatsapp_phone_number_id = '100000000099'".to_owned(),
        "client_phone = '254733000999'".to_owned(),
        format!("brand_id = '{}'", s.b.brand_id),
        "is_active = false".to_owned(),
        "is_verified = true".to_owned(),
        "needs_token_refresh = true".to_owned(),
        "key_version = 7".to_owned(),
    ] {
        let moved = try_as_owner(
            &pool,
            &s,
            &format!(
                "update alphadome.bot_tenants set {set} where id = '{}'",
                s.a.id
            ),
        )
        .await;
        assert!(refused(&moved), "{set}: {moved:?}");
    }
    let deleted = try_as_owner(
        &pool,
        &s,
        &format!("delete from alphadome.bot_tenants where id = '{}'", s.a.id),
    )
    .await;
    assert!(refused(&deleted), "{deleted:?}");

    // Routing still follows the operator's registration.
    let store = Store::from_pool(pool.clone());
    let route = store
        .resolve_tenant(&PhoneNumberId::parse("100000000001").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(route.tenant_id, s.a.id);
    assert!(route.is_active);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_owner_cannot_read_or_replace_its_tokens(pool: PgPool) {
    let keys = local_keys();
    let store = Store::from_pool(pool.clone());
    let s = seed_two_tenants(&store, &keys).await;
    for column in ["whatsapp_access_token", "ai_api_key", "meta_app_secret"] {
        let read = try_as_owner(
            &pool,
            &s,
            &format!("select {column} from alphadome.bot_tenants"),
        )
        .await;
        assert!(refused(&read), "reading {column}: {read:?}");
        for value in ["null", "'v1.AAAA'"] {
            let replaced = try_as_owner(
                &pool,
                &s,
                &format!(
                    "update alphadome.bot_tenants set {column} = {value} where id = '{}'",
                    s.a.id
                ),
            )
            .await;
            assert!(refused(&replaced), "replacing {column}: {replaced:?}");
        }
    }
    let star = try_as_owner(&pool, &s, "select * from alphadome.bot_tenants").await;
    assert!(refused(&star), "{star:?}");
    // What the dashboard shows is readable.
    let mut tx = as_owner(&pool, &s).await;
    let name: String = sqlx::query_scalar(
        "select client_name from alphadome.bot_tenants where needs_token_refresh = false",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(name, "Kassangas Music Shop");
    drop(tx);
    // And the token is intact.
    let ctx = store.load_tenant_context(s.a.id).await.unwrap().unwrap();
    let ring = keys.ring(s.a.id).await.unwrap();
    let token = ring
        .decrypt(
            SecretColumn::WhatsappAccessToken,
            &ctx.tenant.whatsapp_access_token.unwrap(),
        )
        .unwrap();
    assert_eq!(token.expose_secret(), "EAA-token-A");
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_owner_cannot_plant_a_customer_under_another_business(pool: PgPool) {
    let s = seed_every_table(&pool).await;
    let planted_phone = "254711555666";
    for brand in [s.a.brand_id, s.b.brand_id] {
        for sql in [
            format!(
                "insert into public.users (bot_tenant_id, brand_id, phone) values ('{}', '{brand}', '{planted_phone}')",
                s.b.id
            ),
            format!(
                "insert into public.subscriptions (bot_tenant_id, brand_id, is_subscribed) values ('{}', '{brand}', false)",
                s.b.id
            ),
            format!(
                "insert into public.conversations (bot_tenant_id, brand_id, direction, wa_message_id) values ('{}', '{brand}', 'incoming', 'wamid.planted')",
                s.b.id
            ),
        ] {
            let planted = try_as_owner(&pool, &s, &sql).await;
            assert!(refused(&planted), "{sql}: {planted:?}");
        }
    }
    // No oracle: trying B's real customer's number fails exactly like an unknown number.
    let known = try_as_owner(
        &pool,
        &s,
        &format!(
            "insert into public.users (bot_tenant_id, brand_id, phone) values ('{}', '{}', '{B_CUSTOMER}')",
            s.b.id, s.a.brand_id
        ),
    )
    .await
    .unwrap_err()
    .to_string();
    let unknown = try_as_owner(
        &pool,
        &s,
        &format!(
            "insert into public.users (bot_tenant_id, brand_id, phone) values ('{}', '{}', '{planted_phone}')",
            s.b.id, s.a.brand_id
        ),
    )
    .await
    .unwrap_err()
    .to_string();
    assert_eq!(known, unknown);
    // B's pipeline still answers that number (a planted row made this fail before).
    let store = Store::from_pool(pool.clone());
    let out = store
        .begin_inbound_batch(
            s.b.id,
            120,
            6,
            &[inbound("wamid.after-planting", planted_phone)],
        )
        .await
        .unwrap();
    assert!(out[0].claimed);
    assert!(out[0].first_contact);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_owner_cannot_write_conversations(pool: PgPool) {
    let s = seed_every_table(&pool).await;
    let a = s.a.id;
    let ab = s.a.brand_id;
    // Its own tenant's rows included: messages, customers and subscriptions are written by
    // the server's paths only.
    for sql in [
        format!("insert into public.conversations (bot_tenant_id, brand_id, direction, message_text) values ('{a}', '{ab}', 'outgoing', 'spoofed')"),
        "update public.conversations set message_text = 'rewritten'".to_owned(),
        "update public.conversations set status = 'answered'".to_owned(),
        "delete from public.conversations".to_owned(),
        format!("insert into public.users (bot_tenant_id, brand_id, phone) values ('{a}', '{ab}', '254711555666')"),
        "update public.users set bot_paused_until = now() + interval '1 year'".to_owned(),
        "delete from public.users".to_owned(),
        format!("insert into public.subscriptions (bot_tenant_id, brand_id, is_subscribed) values ('{a}', '{ab}', true)"),
        "update public.subscriptions set is_subscribed = false".to_owned(),
        "delete from public.subscriptions".to_owned(),
        "update alphadome.bot_usage_counters set replies = 0".to_owned(),
        "delete from alphadome.bot_usage_counters".to_owned(),
        "delete from alphadome.pending_statuses".to_owned(),
        format!("insert into alphadome.pending_statuses (bot_tenant_id, wa_message_id, status, payload) values ('{a}', 'wamid.x', 'read', '{{}}')"),
        format!("select alphadome.apply_statuses('{{\"tenant_id\": \"{a}\", \"items\": []}}'::jsonb)"),
        // Nor through the pipeline's functions.
        format!("select alphadome.begin_inbound_batch('{{\"tenant_id\": \"{a}\", \"items\": []}}'::jsonb)"),
        format!("select alphadome.act_for_tenant('{a}')"),
    ] {
        let written = try_as_owner(&pool, &s, &sql).await;
        assert!(refused(&written), "{sql}: {written:?}");
    }
    // Reading its own is what the dashboard does.
    let mut tx = as_owner(&pool, &s).await;
    for table in [
        "public.conversations",
        "public.users",
        "public.subscriptions",
    ] {
        let n: i64 = sqlx::query_scalar(&format!("select count(*) from {table}"))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert!(n > 0, "{table}");
    }
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_owner_reads_only_its_own_rows_in_every_table(pool: PgPool) {
    let s = seed_every_table(&pool).await;
    let mut tx = as_owner(&pool, &s).await;
    for table in TABLES {
        let (column, theirs, ours) = match table {
            "public.brands" => ("id", s.b.brand_id.0, s.a.brand_id.0),
            "alphadome.bot_tenants" => ("id", s.b.id.0, s.a.id.0),
            _ => ("bot_tenant_id", s.b.id.0, s.a.id.0),
        };
        let all: i64 = sqlx::query_scalar(&format!("select count(*) from {table}"))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        let mine: i64 =
            sqlx::query_scalar(&format!("select count(*) from {table} where {column} = $1"))
                .bind(ours)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        let others: i64 =
            sqlx::query_scalar(&format!("select count(*) from {table} where {column} = $1"))
                .bind(theirs)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        assert!(mine > 0, "{table}: own rows visible");
        assert_eq!(all, mine, "{table}: nothing but its own");
        assert_eq!(others, 0, "{table}: none of B's");
    }
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_owner_sees_only_its_own_brand(pool: PgPool) {
    let s = seed_every_table(&pool).await;
    let mut tx = as_owner(&pool, &s).await;
    let brands: Vec<uuid::Uuid> = sqlx::query_scalar("select id from public.brands")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(brands, vec![s.a.brand_id.0]);
    drop(tx);
    for sql in [
        "insert into public.brands (name) values ('mine too')".to_owned(),
        format!(
            "update public.brands set name = 'x' where id = '{}'",
            s.a.brand_id
        ),
        format!("delete from public.brands where id = '{}'", s.b.brand_id),
        "update public.brands set is_platform_owner = true".to_owned(),
    ] {
        let written = try_as_owner(&pool, &s, &sql).await;
        assert!(refused(&written), "{sql}: {written:?}");
    }
    // anon (the Data API without a sign-in) reaches no brand at all.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("set local role anon")
        .execute(&mut *tx)
        .await
        .unwrap();
    let anon = sqlx::query("select id from public.brands")
        .fetch_all(&mut *tx)
        .await;
    assert!(
        anon.as_ref().map(|r| r.is_empty()).unwrap_or(false) || refused(&anon),
        "{anon:?}"
    );
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_brand_in_user_metadata_gives_nothing(pool: PgPool) {
    let s = seed_every_table(&pool).await;
    let claims = serde_json::json!({
        "sub": "00000000-0000-4000-8000-00000000000a",
        "role": "authenticated",
        "app_metadata": {"provider": "email"},
        "user_metadata": {"brand_id": s.a.brand_id}
    });
    let mut tx = as_admin(&pool, claims.clone()).await;
    for table in TABLES {
        let n: i64 = sqlx::query_scalar(&format!("select count(*) from {table}"))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table}");
    }
    for (table, set) in [
        ("alphadome.bot_tenants", "point_of_contact_name = 'x'"),
        ("alphadome.bot_templates", "system_prompt = 'x'"),
        ("alphadome.bot_training_data", "answer = 'x'"),
        ("alphadome.bot_control_settings", "is_bot_enabled = false"),
    ] {
        let n = sqlx::query(&format!("update {table} set {set}"))
            .execute(&mut *tx)
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(n, 0, "{table}");
    }
    drop(tx);
    let mut tx = as_admin(&pool, claims).await;
    let insert = sqlx::query(
        "insert into alphadome.bot_training_data (bot_tenant_id, question, answer) values ($1, 'q', 'a')",
    )
    .bind(s.a.id)
    .execute(&mut *tx)
    .await;
    assert!(refused(&insert), "{insert:?}");
}

/// Owners (`authenticated`), `anon` and PUBLIC may execute only the small helpers the
/// policies and pages call; every function that acts for a tenant or writes is revoked from
/// PUBLIC and granted to the roles that need it. A migration that forgets the revoke of a new
/// function (PostgreSQL grants EXECUTE to PUBLIC by default) fails here.
#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn owners_and_the_public_execute_only_the_policy_helpers(pool: PgPool) {
    const HELPERS: &[&str] = &[
        "acting_brand_id",
        "current_tenant_brand_id",
        "current_tenant_id",
        "delivery_rank",
        "jwt_brand_id",
        "jwt_tenant_ids",
        "person_pause_interval",
        "platform_max_messages_per_hour",
        "stored_hourly_cap",
        "touch_updated_at",
    ];
    for role in ["anon", "authenticated", "public"] {
        let executable: Vec<String> = sqlx::query_scalar(
            "select p.proname::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
              where n.nspname = 'alphadome'
                and case when $1 = 'public'
                         then exists (select 1 from aclexplode(coalesce(p.proacl,
                                      acldefault('f', p.proowner))) a
                                       where a.grantee = 0 and a.privilege_type = 'EXECUTE')
                         else has_function_privilege($1, p.oid, 'execute') end
              order by 1",
        )
        .bind(role)
        .fetch_all(&pool)
        .await
        .unwrap();
        let beyond: Vec<&String> = executable
            .iter()
            // Owners' usage pages add counters with add_counts (pure).
            .filter(|f| {
                let owners_helper = role == "authenticated" && *f == "add_counts";
                !HELPERS.contains(&f.as_str()) && !owners_helper
            })
            .collect();
        assert!(beyond.is_empty(), "{role} may execute {beyond:?}");
    }
    // The pipeline's role reaches the give-back of migration 0026.
    let app: bool = sqlx::query_scalar(
        "select has_function_privilege('alphadome_app', 'alphadome.give_back_unsent(jsonb)', 'execute')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(app);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn every_tenant_table_forces_row_level_security(pool: PgPool) {
    seed_every_table(&pool).await;
    let tables: Vec<(String, bool, bool)> = sqlx::query_as(
        "select n.nspname || '.' || c.relname, c.relrowsecurity, c.relforcerowsecurity
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where c.relkind in ('r', 'p')
            and (n.nspname = 'alphadome'
                 or (n.nspname = 'public'
                     and c.relname in ('brands', 'conversations', 'users', 'subscriptions')))
          order by 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for table in TABLES {
        assert!(
            tables.iter().any(|(name, _, _)| name == table),
            "{table} is checked"
        );
    }
    let weak: Vec<&(String, bool, bool)> = tables
        .iter()
        .filter(|(_, enabled, forced)| !enabled || !forced)
        .collect();
    assert!(weak.is_empty(), "tables without forced RLS: {weak:?}");
    // Every one of them names the operator explicitly; nobody relies on being the owner.
    let without_operator: Vec<String> = sqlx::query_scalar(
        "select n.nspname || '.' || c.relname
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where c.relkind in ('r', 'p')
            and (n.nspname = 'alphadome'
                 or (n.nspname = 'public'
                     and c.relname in ('brands', 'conversations', 'users', 'subscriptions')))
            and not exists (select 1 from pg_policies p
                             where p.schemaname = n.nspname and p.tablename = c.relname
                               and p.policyname = 'operator_all')",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(without_operator.is_empty(), "{without_operator:?}");
    // And no role the platform creates bypasses RLS but Supabase's own service role.
    let bypass: Vec<String> = sqlx::query_scalar(
        "select rolname::text from pg_roles
          where rolname in ('alphadome_app', 'alphadome_operator', 'authenticated', 'anon')
            and rolbypassrls",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(bypass.is_empty(), "{bypass:?}");
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_function_transaction_cannot_write_under_another_brand(pool: PgPool) {
    let s = seed_every_table(&pool).await;
    let store = Store::from_pool(pool.clone());
    let forge = format!(
        "select set_config('alphadome.brand_id', '{}', true)",
        s.b.brand_id
    );
    for sql in [
        format!(
            "insert into public.conversations (bot_tenant_id, brand_id, direction, message_text) values ('{}', '{}', 'incoming', 'x')",
            s.a.id, s.b.brand_id
        ),
        format!(
            "insert into public.users (bot_tenant_id, brand_id, phone) values ('{}', '{}', '254711555666')",
            s.a.id, s.b.brand_id
        ),
        format!(
            "insert into public.subscriptions (bot_tenant_id, brand_id) values ('{}', '{}')",
            s.a.id, s.b.brand_id
        ),
        format!(
            "update public.conversations set brand_id = '{}'",
            s.b.brand_id
        ),
        // The pipeline itself tags rows with the (forged) setting: refused as well.
        "select alphadome.claim_inbound('{\"wa_message_id\": \"wamid.forged\", \"phone\": \"254711555667\", \"message_type\": \"text\"}'::jsonb, interval '2 minutes', 6)".to_owned(),
    ] {
        let mut tx = store.begin_for_tenant(s.a.id).await.unwrap();
        sqlx::query(&forge).execute(&mut *tx).await.unwrap();
        let written = sqlx::query(&sql).execute(&mut *tx).await;
        assert!(refused(&written), "{sql}: {written:?}");
    }
    let tagged_b: i64 = sqlx::query_scalar(
        "select (select count(*) from public.conversations where bot_tenant_id = $1 and brand_id = $2)
              + (select count(*) from public.users where bot_tenant_id = $1 and brand_id = $2)
              + (select count(*) from public.subscriptions where bot_tenant_id = $1 and brand_id = $2)",
    )
    .bind(s.a.id)
    .bind(s.b.brand_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tagged_b, 0);
    // Without the forgery the same transaction writes under its own brand.
    let mut tx = store.begin_for_tenant(s.a.id).await.unwrap();
    sqlx::query(
        "insert into public.conversations (bot_tenant_id, brand_id, direction, message_text) values ($1, $2, 'incoming', 'x')",
    )
    .bind(s.a.id)
    .bind(s.a.brand_id)
    .execute(&mut *tx)
    .await
    .unwrap();
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_owner_can_edit_its_templates_knowledge_and_bounded_settings(pool: PgPool) {
    let s = seed_every_table(&pool).await;
    let a = s.a.id;
    let mut tx = as_owner(&pool, &s).await;
    for sql in [
        format!("insert into alphadome.bot_templates (bot_tenant_id, template_name, system_prompt, tone) values ('{a}', 'evening', 'You are Kassangas at night', 'calm')"),
        "update alphadome.bot_templates set system_prompt = 'You are Kassangas, briefly' where template_name = 'default'".to_owned(),
        "delete from alphadome.bot_templates where template_name = 'evening'".to_owned(),
        format!("insert into alphadome.bot_training_data (bot_tenant_id, question, answer, category, priority) values ('{a}', 'Do you sell guitars?', 'Yes, from 8,000 KES', 'stock', 5)"),
        "update alphadome.bot_training_data set answer = 'Mon-Sat 9-18' where question = 'What are your hours?'".to_owned(),
        "delete from alphadome.bot_training_data where question = 'Do you sell guitars?'".to_owned(),
        "update alphadome.bot_control_settings set is_bot_enabled = false, enable_ai_responses = false, max_messages_per_hour = 1000, welcome_message = 'Karibu', escalation_quiet_minutes = 30, escalation_template_name = 'handover_notice', escalation_template_language = 'en'".to_owned(),
        "update alphadome.bot_tenants set point_of_contact_name = 'Mr Kassanga', client_name = 'Kassangas Music'".to_owned(),
    ] {
        let done = sqlx::query(&sql).execute(&mut *tx).await;
        assert!(
            done.as_ref().is_ok_and(|d| d.rows_affected() == 1),
            "{sql}: {done:?}"
        );
    }
    tx.commit().await.unwrap();
    let row = sqlx::query(
        "select t.point_of_contact_name, s.is_bot_enabled, s.max_messages_per_hour,
                (select system_prompt from alphadome.bot_templates where bot_tenant_id = t.id and is_default) as prompt,
                (select answer from alphadome.bot_training_data where bot_tenant_id = t.id and question = 'What are your hours?') as answer
           from alphadome.bot_tenants t join alphadome.bot_control_settings s on s.bot_tenant_id = t.id
          where t.id = $1",
    )
    .bind(a)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        row.get::<Option<String>, _>("point_of_contact_name")
            .as_deref(),
        Some("Mr Kassanga")
    );
    assert!(!row.get::<bool, _>("is_bot_enabled"));
    assert_eq!(row.get::<i32, _>("max_messages_per_hour"), 1000);
    assert_eq!(row.get::<String, _>("prompt"), "You are Kassangas, briefly");
    assert_eq!(row.get::<String, _>("answer"), "Mon-Sat 9-18");

    // ...but never onto another business's tenant, nor create or remove a settings row.
    let b = s.b.id;
    for sql in [
        format!("update alphadome.bot_templates set bot_tenant_id = '{b}'"),
        format!("update alphadome.bot_training_data set bot_tenant_id = '{b}'"),
        format!("update alphadome.bot_control_settings set bot_tenant_id = '{b}'"),
        format!("insert into alphadome.bot_templates (bot_tenant_id, template_name, system_prompt) values ('{b}', 'x', 'x')"),
        format!("insert into alphadome.bot_training_data (bot_tenant_id, question, answer) values ('{b}', 'q', 'a')"),
        format!("insert into alphadome.bot_control_settings (bot_tenant_id) values ('{a}')"),
        "delete from alphadome.bot_control_settings".to_owned(),
        "update alphadome.bot_templates set model = 'gpt-4.5-preview'".to_owned(),
    ] {
        let written = try_as_owner(&pool, &s, &sql).await;
        assert!(refused(&written), "{sql}: {written:?}");
    }
    // B's rows are out of reach, silently.
    let mut tx = as_owner(&pool, &s).await;
    for sql in [
        format!("update alphadome.bot_templates set system_prompt = 'pwned' where bot_tenant_id = '{b}'"),
        format!("delete from alphadome.bot_training_data where bot_tenant_id = '{b}'"),
        format!("update alphadome.bot_control_settings set is_bot_enabled = false where bot_tenant_id = '{b}'"),
        format!("update alphadome.bot_tenants set point_of_contact_name = 'pwned' where id = '{b}'"),
    ] {
        let n = sqlx::query(&sql)
            .execute(&mut *tx)
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(n, 0, "{sql}");
    }
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_owner_cannot_raise_the_hourly_cap_above_the_platform_maximum(pool: PgPool) {
    let s = seed_every_table(&pool).await;
    let max: i32 = sqlx::query_scalar("select alphadome.platform_max_messages_per_hour()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(max, 1000);
    let raise =
        |n: i32| format!("update alphadome.bot_control_settings set max_messages_per_hour = {n}");
    let over = try_as_owner(&pool, &s, &raise(max + 1)).await;
    assert!(refused(&over), "{over:?}");
    let huge = try_as_owner(&pool, &s, &raise(i32::MAX)).await;
    assert!(refused(&huge), "{huge:?}");
    let at = try_as_owner(&pool, &s, &raise(max)).await;
    assert!(at.is_ok_and(|d| d.rows_affected() == 1));

    // A cap the operator set above the maximum may be kept or lowered, never raised.
    sqlx::query(
        "update alphadome.bot_control_settings set max_messages_per_hour = 5000 where bot_tenant_id = $1",
    )
    .bind(s.a.id)
    .execute(&pool)
    .await
    .unwrap();
    let keep = try_as_owner(
        &pool,
        &s,
        "update alphadome.bot_control_settings set is_bot_enabled = false",
    )
    .await;
    assert!(keep.is_ok_and(|d| d.rows_affected() == 1));
    let lower = try_as_owner(&pool, &s, &raise(4000)).await;
    assert!(lower.is_ok_and(|d| d.rows_affected() == 1));
    let higher = try_as_owner(&pool, &s, &raise(5001)).await;
    assert!(refused(&higher), "{higher:?}");
}

/// The migrating user as Supabase has it: not a superuser, no BYPASSRLS. The tests connect
/// as `postgres`, a superuser exempt from RLS even when forced, so this test hands the
/// tables and the definer functions to such a role and runs the operator's and the
/// functions' paths as it.
#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_non_superuser_owner_keeps_the_operator_and_routing_paths_under_forced_rls(pool: PgPool) {
    let s = seed_every_table(&pool).await;
    sqlx::raw_sql(
        "do $$ begin
           if not exists (select 1 from pg_roles where rolname = 'alphadome_owner_test') then
             create role alphadome_owner_test login inherit nosuperuser nobypassrls;
           end if;
         exception when duplicate_object or unique_violation then null;
         end $$;
         grant alphadome_app, alphadome_operator to alphadome_owner_test;
         grant usage on schema alphadome, auth to alphadome_owner_test;
         do $$ declare r record; begin
           for r in select c.oid::regclass as t from pg_class c join pg_namespace n on n.oid = c.relnamespace
                     where c.relkind = 'r' and (n.nspname = 'alphadome'
                       or (n.nspname = 'public' and c.relname in ('brands','conversations','users','subscriptions')))
           loop execute format('alter table %s owner to alphadome_owner_test', r.t); end loop;
         end $$;
         alter function alphadome.resolve_tenant(text) owner to alphadome_owner_test;
         alter function alphadome.resolve_tenant_by_brand(uuid) owner to alphadome_owner_test;",
    )
    .execute(&pool)
    .await
    .unwrap();
    let owner = connect_as(&pool, "alphadome_owner_test").await;
    let (superuser, bypass): (bool, bool) =
        sqlx::query_as("select rolsuper, rolbypassrls from pg_roles where rolname = current_user")
            .fetch_one(owner.pool())
            .await
            .unwrap();
    assert!(!superuser && !bypass);

    let keys = local_keys();
    let c = owner
        .create_tenant(
            &keys,
            crate::helpers::new_tenant("Third Shop", "254722333444", "100000000003", "EAA-C"),
        )
        .await
        .unwrap();
    assert_eq!(owner.list_tenants().await.unwrap().len(), 3);
    assert_eq!(
        owner.tenant_summary(s.b.id).await.unwrap().client_name,
        "Mama Njeri Salon"
    );
    assert_eq!(owner.find_tenant("100000000002").await.unwrap(), s.b.id);
    assert_eq!(
        owner
            .resolve_tenant_by_brand(s.a.brand_id)
            .await
            .unwrap()
            .unwrap()
            .tenant_id,
        s.a.id
    );
    owner
        .set_tenant_secret(&keys, c.id, SecretColumn::AiApiKey, &secret("sk-third"))
        .await
        .unwrap();
    owner.rotate_tenant_key(&keys, c.id, true).await.unwrap();
    let ctx = owner.load_tenant_context(c.id).await.unwrap().unwrap();
    assert_eq!(ctx.tenant.id, c.id);
    let out = owner
        .begin_inbound_batch(c.id, 120, 6, &[inbound("wamid.third", A_CUSTOMER)])
        .await
        .unwrap();
    assert!(out[0].claimed);
    owner.pool().close().await;

    // FORCE is real: without the operator's policy path the owner sees no row at all.
    sqlx::raw_sql("revoke alphadome_operator from alphadome_owner_test")
        .execute(&pool)
        .await
        .unwrap();
    let bare = connect_as(&pool, "alphadome_owner_test").await;
    let listed = bare.list_tenants().await;
    let routed = bare
        .resolve_tenant(&PhoneNumberId::parse("100000000002").unwrap())
        .await;
    bare.pool().close().await;
    sqlx::raw_sql("grant alphadome_operator to alphadome_owner_test")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(listed.unwrap().len(), 0);
    assert!(routed.unwrap().is_none());
}

async fn connect_as(pool: &PgPool, role: &str) -> Store {
    let db: String = sqlx::query_scalar("select current_database()::text")
        .fetch_one(pool)
        .await
        .unwrap();
    let base = std::env::var("DATABASE_URL").unwrap();
    let server = base
        .rsplit_once('/')
        .unwrap()
        .0
        .replace("postgres@", &format!("{role}@"));
    Store::connect(&secrecy::SecretString::from(format!("{server}/{db}")), 2)
        .await
        .unwrap()
}

/// Two key providers over one key directory: two operator processes.
fn two_processes() -> (KeyProvider, KeyProvider) {
    let dir = temp_dir("race-keys");
    let p = || KeyProvider::new(KeyBackend::LocalDir(dir.clone()), Duration::from_secs(60));
    (p(), p())
}

/// Every sealed column of the tenant opens with the ring as stored now (read past any
/// cache), and is under the row's key version, which is the ring's current one.
async fn check_sealed(pool: &PgPool, keys: &KeyProvider, tenant: TenantId, token: &str) {
    let ring = keys.load_fresh(tenant).await.unwrap().unwrap();
    let row = sqlx::query(
        "select key_version, whatsapp_access_token, ai_api_key, meta_app_secret
           from alphadome.bot_tenants where id = $1",
    )
    .bind(tenant)
    .fetch_one(pool)
    .await
    .unwrap();
    let version: i32 = row.get("key_version");
    assert_eq!(
        version as u32, ring.current,
        "row and ring agree on the version"
    );
    for column in [
        SecretColumn::WhatsappAccessToken,
        SecretColumn::AiApiKey,
        SecretColumn::MetaAppSecret,
    ] {
        let env: Option<String> = row.get(column.as_str());
        if let Some(env) = env {
            assert_eq!(envelope_version(&env).unwrap(), ring.current);
            let plain = ring
                .decrypt(column, &env)
                .unwrap_or_else(|e| panic!("{} does not open: {e}", column.as_str()));
            if column == SecretColumn::WhatsappAccessToken {
                assert_eq!(plain.expose_secret(), token);
            }
        }
    }
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn two_concurrent_rotations_never_leave_a_secret_under_a_missing_key(pool: PgPool) {
    let (one, two) = two_processes();
    let store = Store::from_pool(pool.clone());
    let s = seed_two_tenants(&store, &one).await;
    for round in 0..6 {
        let retire = round % 2 == 1;
        let (x, y) = tokio::join!(
            store.rotate_tenant_key(&one, s.a.id, retire),
            store.rotate_tenant_key(&two, s.a.id, true),
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_ne!(x, y, "round {round}: each rotation got its own version");
        check_sealed(&pool, &one, s.a.id, "EAA-token-A").await;
    }
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn set_secret_racing_rotate_and_retire_never_leaves_a_secret_under_a_retired_key(
    pool: PgPool,
) {
    let (one, two) = two_processes();
    let store = Store::from_pool(pool.clone());
    let s = seed_two_tenants(&store, &one).await;
    for round in 0..6 {
        let token = format!("EAA-renewed-{round}");
        let value = secret(&token);
        let (set, rotated) = tokio::join!(
            store.set_tenant_secret(&one, s.a.id, SecretColumn::WhatsappAccessToken, &value),
            store.rotate_tenant_key(&two, s.a.id, true),
        );
        set.unwrap();
        rotated.unwrap();
        check_sealed(&pool, &two, s.a.id, &token).await;
    }
}

/// The live database may keep permissive policies of its own on the seed's public tables
/// (permissive policies add up); the restrictive boundary is ANDed with all of them.
#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_older_permissive_policy_on_the_live_tables_cannot_widen_an_owners_reach(pool: PgPool) {
    let s = seed_every_table(&pool).await;
    for table in [
        "public.users",
        "public.conversations",
        "public.subscriptions",
        "public.brands",
    ] {
        sqlx::raw_sql(&format!(
            "create policy legacy_open on {table} for all to authenticated using (true) with check (true)"
        ))
        .execute(&pool)
        .await
        .unwrap();
    }
    let mut tx = as_owner(&pool, &s).await;
    for (table, column, theirs) in [
        ("public.users", "bot_tenant_id", s.b.id.0),
        ("public.conversations", "bot_tenant_id", s.b.id.0),
        ("public.subscriptions", "bot_tenant_id", s.b.id.0),
        ("public.brands", "id", s.b.brand_id.0),
    ] {
        let n: i64 =
            sqlx::query_scalar(&format!("select count(*) from {table} where {column} = $1"))
                .bind(theirs)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        assert_eq!(n, 0, "{table}");
    }
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_function_transaction_cannot_reroute_or_rebrand_its_own_tenant(pool: PgPool) {
    let s = seed_every_table(&pool).await;
    let store = Store::from_pool(pool.clone());
    for set in [
        "whatsapp_phone_number_id = '100000000099'".to_owned(),
        "client_phone = '254733000999'".to_owned(),
        format!("brand_id = '{}'", s.b.brand_id),
    ] {
        let mut tx = store.begin_for_tenant(s.a.id).await.unwrap();
        let moved = sqlx::query(&format!(
            "update alphadome.bot_tenants set {set} where id = '{}'",
            s.a.id
        ))
        .execute(&mut *tx)
        .await;
        assert!(refused(&moved), "{set}: {moved:?}");
    }
    // What the functions' and the CLI's tenant paths do write still works.
    store.set_tenant_active(s.a.id, false).await.unwrap();
    store
        .set_tenant_secret(
            &local_keys(),
            s.b.id,
            SecretColumn::AiApiKey,
            &secret("sk-new"),
        )
        .await
        .unwrap();
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_owner_adds_phrasings_only_to_its_own_entries_and_only_as_its_own(pool: PgPool) {
    let s = seed_every_table(&pool).await;
    let (a, b) = (s.a.id, s.b.id);
    let entry_of = |t: alphadome::domain::TenantId| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, uuid::Uuid>(
                "select id from alphadome.bot_training_data where bot_tenant_id = $1 limit 1",
            )
            .bind(t)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let (ea, eb) = (entry_of(a).await, entry_of(b).await);
    for (t, e) in [(a, ea), (b, eb)] {
        sqlx::query(
            "insert into alphadome.bot_training_phrasings
                (bot_tenant_id, training_data_id, phrasing, source) values ($1, $2, 'seeded', 'generated')",
        )
        .bind(t)
        .bind(e)
        .execute(&pool)
        .await
        .unwrap();
    }
    for sql in [
        // B's entry, B's tenant: the policy's `with check`.
        format!("insert into alphadome.bot_training_phrasings (bot_tenant_id, training_data_id, phrasing) values ('{b}', '{eb}', 'x')"),
        // B's entry filed under A's tenant: the composite key keeps a phrasing on its entry's tenant.
        format!("insert into alphadome.bot_training_phrasings (bot_tenant_id, training_data_id, phrasing) values ('{a}', '{eb}', 'x')"),
        // Its own entry, but claiming the AI wrote it: `source` is not the owner's to set.
        format!("insert into alphadome.bot_training_phrasings (bot_tenant_id, training_data_id, phrasing, source) values ('{a}', '{ea}', 'x', 'generated')"),
        // No edits in place (delete and add instead), least of all moving one to another entry.
        format!("update alphadome.bot_training_phrasings set training_data_id = '{eb}'"),
        "update alphadome.bot_training_phrasings set phrasing = 'rewritten'".to_owned(),
    ] {
        let written = try_as_owner(&pool, &s, &sql).await;
        let by_key = matches!(&written, Err(e) if e.to_string().contains("bot_training_phrasings_entry_fkey"));
        assert!(refused(&written) || by_key, "{sql}: {written:?}");
    }
    // What A may do: add to its own entry, see and delete its own phrasings only.
    let mut tx = as_owner(&pool, &s).await;
    sqlx::query(&format!(
        "insert into alphadome.bot_training_phrasings (bot_tenant_id, training_data_id, phrasing) values ('{a}', '{ea}', 'bei gani')"
    ))
    .execute(&mut *tx)
    .await
    .unwrap();
    let seen: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "select bot_tenant_id, source from alphadome.bot_training_phrasings order by phrasing",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    assert_eq!(
        seen,
        vec![(a.0, "owner".to_owned()), (a.0, "generated".to_owned())]
    );
    let deleted = sqlx::query("delete from alphadome.bot_training_phrasings")
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(deleted, 2);
    tx.commit().await.unwrap();
    let b_left = scalar_i64(
        &pool,
        &format!(
            "select count(*) from alphadome.bot_training_phrasings where bot_tenant_id = '{b}'"
        ),
    )
    .await;
    assert_eq!(b_left, 1, "B's phrasing is untouched");
}
