//! The store through PgBouncer in transaction mode (what Supabase's pooler does): no named
//! prepared statement may survive a transaction, or the next one on another server
//! connection fails with "prepared statement does not exist".

use crate::helpers::{bouncer_url, entry, local_keys, seed_two_tenants};
use alphadome::store::Store;
use sqlx::PgPool;

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn every_store_operation_works_through_pgbouncer_in_transaction_mode(pool: PgPool) {
    let db: String = sqlx::query_scalar("select current_database()::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    let store = Store::connect(&bouncer_url(&db), 8)
        .await
        .expect("PgBouncer on 6432: run scripts/test-services.sh");
    let keys = local_keys();
    let s = seed_two_tenants(&store, &keys).await;
    // Repeat every statement shape concurrently so that they land on different server
    // connections; named statements would fail on the second round.
    let mut tasks = Vec::new();
    for i in 0..24 {
        let store = store.clone();
        let (a, b) = (s.a.id, s.b.id);
        tasks.push(tokio::spawn(async move {
            let t = if i % 2 == 0 { a } else { b };
            store.load_tenant_context(t).await.unwrap().unwrap();
            store.list_entries(t).await.unwrap();
            store
                .import_entries(t, &[entry(&format!("Question {i}?"), "Answer")])
                .await
                .unwrap();
            store.tenant_summary(t).await.unwrap();
            store.find_tenant("100000000001").await.unwrap();
            store.list_tenants().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.list_entries(s.a.id).await.unwrap().len(), 13);
    store.rotate_tenant_key(&keys, s.b.id, false).await.unwrap();
    assert_eq!(
        store
            .load_tenant_context(s.b.id)
            .await
            .unwrap()
            .unwrap()
            .tenant
            .key_version,
        2
    );
    release_server_connections(store, &db).await;
}

/// Closes PgBouncer's server connections to the test database so sqlx can drop it.
async fn release_server_connections(store: Store, db: &str) {
    store.pool().close().await;
    let admin = bouncer_url("pgbouncer");
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(
        secrecy::ExposeSecret::expose_secret(&admin),
    )
    .await
    .unwrap();
    // KILL drops the server connections and pauses the database; RESUME lets a later run in.
    sqlx::raw_sql(&format!("KILL {db}"))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::raw_sql(&format!("RESUME {db}"))
        .execute(&mut conn)
        .await
        .unwrap();
}
