//! Migrations run on an empty database and on a Supabase-like one that already has the
//! seed's public tables with live rows.

use alphadome::store::MIGRATOR;
use sqlx::PgPool;

#[sqlx::test(migrations = false)]
async fn migrations_run_on_a_database_that_already_has_the_seed_tables_and_keep_their_rows(
    pool: PgPool,
) {
    // The seed's shape: tables created by the old server.js deployment.
    sqlx::raw_sql(
        "create table public.brands (id uuid primary key, is_platform_owner boolean default false);
         create table public.users (id uuid primary key, phone text, full_name text, subscribed boolean);
         create table public.conversations (id uuid primary key default gen_random_uuid(), brand_id uuid,
             user_id uuid, direction text, message_text text, created_at timestamptz default now());
         create table public.subscriptions (id uuid primary key default gen_random_uuid(), user_id uuid, brand_id uuid);
         insert into public.brands (id) values ('1af71403-0000-4000-8000-000000000001');
         insert into public.conversations (brand_id, direction, message_text)
             values ('1af71403-0000-4000-8000-000000000001', 'incoming', 'old history');",
    )
    .execute(&pool)
    .await
    .unwrap();

    MIGRATOR
        .run(&pool)
        .await
        .expect("migrations apply over the seed tables");

    let kept: i64 = sqlx::query_scalar(
        "select count(*) from public.conversations where message_text = 'old history'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(kept, 1);
    // The pipeline's columns were added to the existing table.
    let cols: Vec<String> = sqlx::query_scalar(
        "select column_name::text from information_schema.columns
          where table_schema = 'public' and table_name = 'conversations' order by 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for c in [
        "bot_tenant_id",
        "wa_message_id",
        "message_type",
        "status",
        "reply_source",
    ] {
        assert!(cols.iter().any(|x| x == c), "missing column {c}");
    }
    // Running them again changes nothing and fails nothing.
    MIGRATOR.run(&pool).await.unwrap();
}

#[sqlx::test(migrations = false)]
async fn migrations_run_on_an_empty_database_and_enable_rls_on_every_tenant_table(pool: PgPool) {
    MIGRATOR.run(&pool).await.unwrap();
    let without_rls: Vec<String> = sqlx::query_scalar(
        "select n.nspname || '.' || c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where c.relkind = 'r' and not c.relrowsecurity
            and (n.nspname = 'alphadome' or (n.nspname = 'public' and c.relname in ('conversations','users','subscriptions')))",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        without_rls.is_empty(),
        "tables without RLS: {without_rls:?}"
    );
    let bypass: bool =
        sqlx::query_scalar("select rolbypassrls from pg_roles where rolname = 'alphadome_app'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!bypass, "the functions' role must not bypass RLS");
}
