//! Row-level security: an admin of brand A (JWT claim) and the functions' role acting for
//! tenant A see and change only A's rows, whatever the SQL asks for.

use crate::helpers::{local_keys, seed_two_tenants, Seeded};
use alphadome::store::Store;
use sqlx::{PgPool, Postgres, Transaction};

/// Opens a transaction as Supabase's `authenticated` role with the given JWT claims.
pub async fn as_admin(pool: &PgPool, claims: serde_json::Value) -> Transaction<'static, Postgres> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("select set_config('request.jwt.claims', $1, true)")
        .bind(claims.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("set local role authenticated")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

async fn count(tx: &mut Transaction<'static, Postgres>, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&mut **tx).await.unwrap()
}

const TABLES: [&str; 8] = [
    "alphadome.bot_tenants",
    "alphadome.bot_templates",
    "alphadome.bot_training_data",
    "alphadome.bot_control_settings",
    "public.conversations",
    "public.users",
    "public.subscriptions",
    "alphadome.pending_statuses",
];

async fn seeded(pool: &PgPool) -> Seeded {
    seed_two_tenants(&Store::from_pool(pool.clone()), &local_keys()).await
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_admin_of_brand_a_sees_only_brand_a_rows(pool: PgPool) {
    let s = seeded(&pool).await;
    let mut tx = as_admin(
        &pool,
        serde_json::json!({"sub": "u1", "app_metadata": {"brand_id": s.a.brand_id}}),
    )
    .await;
    assert_eq!(
        count(&mut tx, "select count(*) from alphadome.bot_tenants").await,
        1
    );
    let name: String = sqlx::query_scalar("select client_name from alphadome.bot_tenants")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(name, "Kassangas Music Shop");
    for table in [
        "alphadome.bot_templates",
        "alphadome.bot_training_data",
        "alphadome.bot_control_settings",
        "public.conversations",
    ] {
        assert_eq!(
            count(&mut tx, &format!("select count(*) from {table}")).await,
            1,
            "{table}"
        );
    }
    let b_rows = count(
        &mut tx,
        &format!(
            "select count(*) from public.conversations where brand_id = '{}'",
            s.b.brand_id
        ),
    )
    .await;
    assert_eq!(b_rows, 0);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_admin_of_brand_a_cannot_update_or_delete_brand_b_rows(pool: PgPool) {
    let s = seeded(&pool).await;
    let mut tx = as_admin(
        &pool,
        serde_json::json!({"app_metadata": {"brand_id": s.a.brand_id}}),
    )
    .await;
    let updated =
        sqlx::query("update alphadome.bot_tenants set client_name = 'pwned' where id = $1")
            .bind(s.b.id)
            .execute(&mut *tx)
            .await
            .unwrap();
    assert_eq!(updated.rows_affected(), 0);
    let updated = sqlx::query(
        "update alphadome.bot_training_data set answer = 'pwned' where bot_tenant_id = $1",
    )
    .bind(s.b.id)
    .execute(&mut *tx)
    .await
    .unwrap();
    assert_eq!(updated.rows_affected(), 0);
    let deleted = sqlx::query("delete from alphadome.bot_templates where bot_tenant_id = $1")
        .bind(s.b.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 0);
    tx.commit().await.unwrap();
    let intact: i64 =
        sqlx::query_scalar("select count(*) from alphadome.bot_templates where bot_tenant_id = $1")
            .bind(s.b.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(intact, 1);

    // Messages are never deleted by an owner, whoever's they are.
    let mut tx = as_admin(
        &pool,
        serde_json::json!({"app_metadata": {"brand_id": s.a.brand_id}}),
    )
    .await;
    let deleted = sqlx::query("delete from public.conversations where brand_id = $1")
        .bind(s.b.brand_id)
        .execute(&mut *tx)
        .await;
    assert!(refused(&deleted), "{deleted:?}");
}

/// Refused by the database: no privilege for it, or a policy's check.
pub fn refused<T: std::fmt::Debug>(result: &Result<T, sqlx::Error>) -> bool {
    match result {
        Ok(_) => false,
        Err(e) => {
            let text = e.to_string();
            text.contains("row-level security") || text.contains("permission denied")
        }
    }
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_admin_of_brand_a_cannot_insert_into_or_move_rows_to_brand_b(pool: PgPool) {
    let s = seeded(&pool).await;
    let claims = serde_json::json!({"app_metadata": {"brand_id": s.a.brand_id}});

    let mut tx = as_admin(&pool, claims.clone()).await;
    let insert = sqlx::query("insert into public.conversations (brand_id, direction, message_text) values ($1, 'incoming', 'x')")
        .bind(s.b.brand_id)
        .execute(&mut *tx)
        .await;
    assert!(refused(&insert), "{insert:?}");
    drop(tx);

    let mut tx = as_admin(&pool, claims.clone()).await;
    let insert = sqlx::query("insert into alphadome.bot_training_data (bot_tenant_id, question, answer) values ($1, 'q', 'a')")
        .bind(s.b.id)
        .execute(&mut *tx)
        .await;
    assert!(refused(&insert), "{insert:?}");
    drop(tx);

    let mut tx = as_admin(&pool, claims).await;
    let moved = sqlx::query("update public.conversations set brand_id = $1 where brand_id = $2")
        .bind(s.b.brand_id)
        .bind(s.a.brand_id)
        .execute(&mut *tx)
        .await;
    assert!(refused(&moved), "{moved:?}");
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_brand_claim_in_user_metadata_is_ignored(pool: PgPool) {
    let s = seeded(&pool).await;
    let mut tx = as_admin(
        &pool,
        serde_json::json!({"user_metadata": {"brand_id": s.a.brand_id}}),
    )
    .await;
    for table in TABLES {
        assert_eq!(
            count(&mut tx, &format!("select count(*) from {table}")).await,
            0,
            "{table}"
        );
    }
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_top_level_hook_claim_grants_its_brand(pool: PgPool) {
    let s = seeded(&pool).await;
    let mut tx = as_admin(&pool, serde_json::json!({"brand_id": s.b.brand_id})).await;
    let name: String = sqlx::query_scalar("select client_name from alphadome.bot_tenants")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(name, "Mama Njeri Salon");
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn anon_sees_nothing(pool: PgPool) {
    seeded(&pool).await;
    for table in TABLES {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("set local role anon")
            .execute(&mut *tx)
            .await
            .unwrap();
        let result: Result<i64, _> = sqlx::query_scalar(&format!("select count(*) from {table}"))
            .fetch_one(&mut *tx)
            .await;
        match result {
            Ok(n) => assert_eq!(n, 0, "{table}"),
            Err(e) => assert!(e.to_string().contains("permission denied"), "{table}: {e}"),
        }
    }
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_expired_claim_setting_means_no_claims(pool: PgPool) {
    let s = seeded(&pool).await;
    let mut conn = pool.acquire().await.unwrap();
    // A previous transaction set claims locally; the session now holds an empty string.
    sqlx::raw_sql(&format!(
        "begin; select set_config('request.jwt.claims', '{{\"brand_id\":\"{}\"}}', true); commit;",
        s.a.brand_id
    ))
    .execute(&mut *conn)
    .await
    .unwrap();
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    sqlx::query("set local role authenticated")
        .execute(&mut *tx)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("select count(*) from alphadome.bot_tenants")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn the_functions_role_acting_for_tenant_a_sees_and_changes_only_tenant_a(pool: PgPool) {
    let s = seeded(&pool).await;
    let store = Store::from_pool(pool.clone());
    let mut tx = store.begin_for_tenant(s.a.id).await.unwrap();
    let role: String = sqlx::query_scalar("select current_user::text")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(role, "alphadome_app");
    // No `where`: RLS alone limits the rows.
    for table in [
        "alphadome.bot_tenants",
        "alphadome.bot_templates",
        "alphadome.bot_training_data",
        "alphadome.bot_control_settings",
        "public.conversations",
    ] {
        let n: i64 = sqlx::query_scalar(&format!("select count(*) from {table}"))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(n, 1, "{table}");
    }
    let updated = sqlx::query("update public.conversations set message_text = 'pwned'")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 1, "only A's row is reachable");
    let insert = sqlx::query(
        "insert into public.conversations (brand_id, bot_tenant_id, direction, message_text) values ($1, $2, 'incoming', 'x')",
    )
    .bind(s.b.brand_id)
    .bind(s.b.id)
    .execute(&mut *tx)
    .await;
    assert!(insert
        .unwrap_err()
        .to_string()
        .contains("row-level security"));
    drop(tx);

    // Tenant A's id with tenant B's brand: refused too (logs cannot be put under another brand).
    let mut tx = store.begin_for_tenant(s.a.id).await.unwrap();
    let insert = sqlx::query(
        "insert into public.conversations (brand_id, bot_tenant_id, direction, message_text) values ($1, $2, 'incoming', 'x')",
    )
    .bind(s.b.brand_id)
    .bind(s.a.id)
    .execute(&mut *tx)
    .await;
    assert!(insert
        .unwrap_err()
        .to_string()
        .contains("row-level security"));
    drop(tx);

    let b_text: String = sqlx::query_scalar(
        "select message_text from public.conversations where bot_tenant_id = $1",
    )
    .bind(s.b.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(b_text, "hello");
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn one_transaction_cannot_act_for_two_tenants(pool: PgPool) {
    let s = seeded(&pool).await;
    let store = Store::from_pool(pool.clone());
    let mut tx = store.begin_for_tenant(s.a.id).await.unwrap();
    let err = sqlx::query("select alphadome.act_for_tenant($1)")
        .bind(s.b.id)
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("another tenant"));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn the_tenant_setting_does_not_outlive_its_transaction_on_a_pooled_connection(pool: PgPool) {
    let s = seeded(&pool).await;
    // One connection only, so the second use is certainly the connection the tenant used.
    let single = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(pool.connect_options().as_ref().clone())
        .await
        .unwrap();
    let store = Store::from_pool(single.clone());
    let mut tx = store.begin_for_tenant(s.a.id).await.unwrap();
    let tenant_pid: i32 = sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut conn = single.acquire().await.unwrap();
    let (pid, user, tenant, brand): (i32, String, Option<String>, Option<String>) = sqlx::query_as(
        "select pg_backend_pid(), current_user::text,
                nullif(current_setting('alphadome.tenant_id', true), ''),
                nullif(current_setting('alphadome.brand_id', true), '')",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(pid, tenant_pid, "the same server connection");
    assert_ne!(user, "alphadome_app");
    assert_eq!(tenant, None);
    assert_eq!(brand, None);
    drop(conn);
    single.close().await;
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn the_recommended_lambda_login_role_reaches_data_only_through_alphadome_app(pool: PgPool) {
    let s = seeded(&pool).await;
    // The role the README's Deploy section tells operators to create: login, NOINHERIT, member of alphadome_app.
    sqlx::raw_sql(
        "do $$ begin
           if not exists (select 1 from pg_roles where rolname = 'alphadome_lambda_test') then
             create role alphadome_lambda_test login noinherit;
           end if;
         exception when duplicate_object or unique_violation then null;
         end $$;
         grant alphadome_app to alphadome_lambda_test;",
    )
    .execute(&pool)
    .await
    .unwrap();
    let db: String = sqlx::query_scalar("select current_database()::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    let base = std::env::var("DATABASE_URL").unwrap();
    let server = base
        .rsplit_once('/')
        .unwrap()
        .0
        .replace("postgres@", "alphadome_lambda_test@");
    let url = secrecy::SecretString::from(format!("{server}/{db}"));
    let store = Store::connect(&url, 2).await.unwrap();

    // On its own the login role reaches nothing.
    let direct = sqlx::query("select count(*) from alphadome.bot_tenants")
        .execute(store.pool())
        .await;
    assert!(direct
        .unwrap_err()
        .to_string()
        .contains("permission denied"));
    // Through the store (which switches to alphadome_app first) routing and context work...
    let pnid = alphadome::domain::PhoneNumberId::parse("100000000002").unwrap();
    assert_eq!(
        store
            .resolve_tenant(&pnid)
            .await
            .unwrap()
            .unwrap()
            .tenant_id,
        s.b.id
    );
    let ctx = store.load_tenant_context(s.a.id).await.unwrap().unwrap();
    assert_eq!(ctx.tenant.id, s.a.id);
    // ...and a tenant transaction sees that tenant only.
    let mut tx = store.begin_for_tenant(s.a.id).await.unwrap();
    let n: i64 = sqlx::query_scalar("select count(*) from public.conversations")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 1);
    drop(tx);
    store.pool().close().await;
}
