//! Verify + parse + route of a one-message delivery with a warm tenant cache: the webhook's
//! whole CPU path per request (the enqueue is network and is not measured here).
//! Run: `cargo bench -p alphadome --bench webhook_ingress`.

use alphadome::ingress::Ingress;
use alphadome::keys::{KeyBackend, KeyProvider};
use alphadome::local_queue::{Handled, LocalQueue, RetryPolicy};
use alphadome::queue::JobQueue;
use alphadome::store::{Store, TenantRoute};
use criterion::{criterion_group, criterion_main, Criterion};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let event: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../events/webhook-text-message.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let body = event["body"].as_str().unwrap().as_bytes().to_vec();
    let signature = alphadome::webhook::sign(b"alphadome-test-app-secret", &body);

    let ingress = rt.block_on(async {
        // Never connects: with a warm cache the path does not touch the database.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://bench@127.0.0.1:1/none")
            .unwrap();
        let queue = LocalQueue::start(
            Arc::new(|jobs: Vec<_>| Box::pin(async move { vec![Handled::Done; jobs.len()] })),
            1,
            10,
            RetryPolicy::default(),
        );
        let ingress = Ingress::new(
            Store::from_pool(pool),
            KeyProvider::new(
                KeyBackend::LocalDir(std::env::temp_dir()),
                Duration::from_secs(60),
            ),
            JobQueue::Local(queue),
            Some(SecretString::from("alphadome-test-app-secret".to_owned())),
            None,
            None,
            Duration::from_secs(3600),
        );
        let route = TenantRoute {
            tenant_id: alphadome::domain::TenantId::new(),
            brand_id: alphadome::domain::BrandId::new(),
            is_active: true,
            meta_app_secret: None,
            key_version: 1,
        };
        ingress.remember_route("110000000001", Some(route)).await;
        ingress
    });

    c.bench_function("webhook verify+parse+route (1 message, warm cache)", |b| {
        b.to_async(&rt).iter(|| async {
            let jobs = ingress
                .jobs_for(Some(signature.as_bytes()), &body)
                .await
                .unwrap();
            assert_eq!(jobs.len(), 1);
            jobs
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
