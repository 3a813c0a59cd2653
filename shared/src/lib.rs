//! Alphadome core: every decision of the multi-tenant WhatsApp assistant platform.
//!
//! This crate knows nothing of Lambda: the functions in `functions/` and the `alphadome`
//! CLI translate their inputs into calls here.

pub mod admin;
pub mod app;
pub mod aws;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod faq;
pub mod http;
pub mod ingress;
pub mod intent;
pub mod job;
pub mod keys;
pub mod knowledge_file;
pub mod legacy;
pub mod local_queue;
pub mod openai;
pub mod phrasings;
pub mod platform;
pub mod queue;
pub mod responder;
pub mod sqs_consumer;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod webhook;
pub mod whatsapp;
