//! Integration tests against the real services: PostgreSQL (a fresh database per test),
//! PgBouncer in transaction mode, and moto for Secrets Manager and SQS.
//! Start them with `scripts/test-services.sh`; set DATABASE_URL (see README).

mod admin;
mod coalesce;
mod give_back;
mod helpers;
mod keys;
mod lean_path;
mod migrations;
mod owner_boundary;
mod pgbouncer;
mod phrasings;
mod rls;
mod store;
