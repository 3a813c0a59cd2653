//! Sending one message's recorded replies with the tenant's token, read receipts, and
//! opening the tenant's sealed secrets only when something is to be sent.
//!
//! Concurrency: the messages of one wave (one per customer of an SQS batch) are sent at once
//! (`steps::run_steps` joins their [`Responder::send_replies`]), so a batch of ten customers
//! waits about one Graph latency, not ten; one message's replies go one after the other
//! (the customer's answer before the owner's notice), and a customer's next message is in the
//! next wave (tests: functions/responder/tests/parallel_sends.rs).

use secrecy::SecretString;
use tracing::Instrument;

use super::plan::Incoming;
use super::{DryRunReply, Outbox, Outcome, Responder, Retry, TenantContext};
use crate::crypto::{envelope_version, SecretColumn};
use crate::domain::{mask_phone, PhoneNumber, TenantId};
use crate::store::{PlannedReply, RecordedReply, SendResult, TenantProblem};
use crate::whatsapp::{reply_tag, Recipient, SendError};

impl Responder {
    /// Sends one message's recorded replies; what Graph said is written by the caller.
    pub(super) async fn send_replies(
        &self,
        ctx: &TenantContext,
        token: Option<&SecretString>,
        msg: &Incoming<'_>,
        planned: &[PlannedReply],
        recorded: &[RecordedReply],
    ) -> Delivery {
        let tenant = ctx.record.tenant.id;
        let (m, phone_number_id) = (msg.m, msg.phone_number_id);
        let customer = match (&m.from_wa_id, &m.from_user_id) {
            (Some(p), _) => Recipient::Phone(p.clone()),
            (None, Some(u)) => Recipient::UserId(u.clone()),
            (None, None) => Recipient::Phone(String::new()),
        };
        let mut d = Delivery::default();
        let mut quoted = false;
        for (plan, rec) in planned.iter().zip(recorded) {
            if !rec.send {
                tracing::info!(
                    source = plan.source,
                    "reply recorded by an earlier attempt; not sent again"
                );
                continue;
            }
            let to = if plan.to_customer {
                customer.clone()
            } else {
                match ctx
                    .settings
                    .escalation_phone
                    .as_deref()
                    .map(PhoneNumber::parse)
                {
                    Some(Ok(p)) => Recipient::Phone(p.as_str().to_owned()),
                    _ => continue,
                }
            };
            // The first reply to the customer quotes their message.
            let reply_to = if plan.to_customer && !quoted {
                quoted = true;
                Some(m.wa_message_id.as_str())
            } else {
                None
            };
            // The reply's id goes with it: Meta's statuses name the reply even if the wamid
            // below is never recorded (see `whatsapp::reply_tag`).
            let tag = reply_tag(rec.id);
            let outcome = match (&self.outbox, token) {
                (Outbox::Graph(client), Some(token)) => {
                    client
                        .send_text_tagged(
                            phone_number_id,
                            token,
                            &to,
                            &plan.text,
                            reply_to,
                            Some(&tag),
                        )
                        .await
                }
                (Outbox::DryRun(print), _) => {
                    print(DryRunReply {
                        tenant_id: tenant,
                        business: ctx.record.tenant.client_name.clone(),
                        phone_number_id: phone_number_id.to_owned(),
                        to: match &to {
                            Recipient::Phone(p) | Recipient::UserId(p) => mask_phone(p),
                        },
                        source: plan.source,
                        text: plan.text.clone(),
                    });
                    Ok(vec![format!(
                        "wamid.dryrun.{}",
                        uuid::Uuid::new_v4().simple()
                    )])
                }
                (Outbox::Graph(_), None) => unreachable!("a Graph outbox always has a token"),
            };
            let outcome = match outcome {
                Err(e) if super::handover::is_refused_notice(plan.source, &e) => {
                    self.notice_as_template(ctx, token, msg, &to, &tag, e).await
                }
                other => other,
            };
            match outcome {
                Ok(ids) => {
                    d.sent_sources.push(plan.source);
                    d.results.push(SendResult {
                        id: rec.id,
                        status: "sent",
                        sent_wa_message_id: ids.into_iter().next(),
                        error_code: None,
                    });
                }
                Err(e) => {
                    let status = if e.is_retryable() { "retry" } else { "failed" };
                    if e.is_retryable() {
                        d.retry.get_or_insert_with(|| format!("graph: {e}"));
                    }
                    if matches!(e, SendError::TokenInvalid { .. }) {
                        d.token_invalid = true;
                        tracing::error!(
                            "WhatsApp token rejected (190): tenant flagged for a new token"
                        );
                    } else if !e.is_retryable() {
                        tracing::warn!(error = %e, source = plan.source, "send refused by Graph; not retried");
                    }
                    if d.refused.is_none() && !e.is_retryable() && plan.to_customer {
                        d.refused = Some(if d.token_invalid {
                            "token_invalid"
                        } else {
                            "rejected"
                        });
                    }
                    d.results.push(SendResult {
                        id: rec.id,
                        status,
                        sent_wa_message_id: None,
                        error_code: e.code(),
                    });
                }
            }
        }
        d
    }

    /// Blue ticks on a message that got an answer, when the tenant wants them.
    pub(super) async fn send_read_receipt(
        &self,
        ctx: &TenantContext,
        token: Option<&SecretString>,
        msg: &Incoming<'_>,
        answered: bool,
    ) {
        if let (Outbox::Graph(client), Some(token)) = (&self.outbox, token) {
            if answered && ctx.settings.mark_messages_read {
                if let Err(e) = client
                    .mark_read(msg.phone_number_id, token, &msg.m.wa_message_id)
                    .instrument(msg.span.clone())
                    .await
                {
                    let _in_job = msg.span.enter();
                    tracing::debug!(error = %e, "read receipt failed");
                }
            }
        }
    }

    /// The tenant's WhatsApp token, opened for this batch.
    pub(super) async fn whatsapp_token(
        &self,
        ctx: &TenantContext,
    ) -> Result<SecretString, OpenError> {
        let sealed = ctx
            .record
            .tenant
            .whatsapp_access_token
            .as_deref()
            .ok_or(OpenError::Permanent(TenantProblem::NoWhatsappToken))?;
        self.open(
            ctx.record.tenant.id,
            SecretColumn::WhatsappAccessToken,
            sealed,
        )
        .await
        .map_err(|e| match e {
            OpenError::Permanent(_) => OpenError::Permanent(TenantProblem::WhatsappTokenUnreadable),
            e => e,
        })
    }

    /// Opens one of a tenant's sealed secrets. A data key that cannot be fetched now is
    /// transient; a ciphertext that is malformed, under a key version that does not exist, or
    /// that fails authentication is permanent (retrying opens nothing).
    pub(super) async fn open(
        &self,
        tenant: TenantId,
        column: SecretColumn,
        sealed: &str,
    ) -> Result<SecretString, OpenError> {
        let problem = match column {
            SecretColumn::AiApiKey => TenantProblem::AiKeyUnreadable,
            _ => TenantProblem::WhatsappTokenUnreadable,
        };
        let version = envelope_version(sealed).map_err(|e| {
            tracing::error!(column = column.as_str(), error = %e, "sealed secret is malformed");
            OpenError::Permanent(problem)
        })?;
        let ring = match self.keys.ring_with_version(tenant, version).await {
            Ok(ring) => ring,
            Err(e) if crate::keys::is_missing_key(&e) => {
                tracing::error!(column = column.as_str(), error = %format!("{e:#}"), "no data key opens this secret");
                return Err(OpenError::Permanent(problem));
            }
            Err(e) => return Err(OpenError::Transient(format!("data key: {e:#}"))),
        };
        ring.decrypt(column, sealed).map_err(|e| {
            tracing::error!(column = column.as_str(), error = %e, "sealed secret does not open");
            OpenError::Permanent(problem)
        })
    }
}

/// Why a sealed secret did not open.
#[derive(Debug, Clone)]
pub(super) enum OpenError {
    /// Try again later (the key store is unreachable).
    Transient(String),
    /// The tenant's configuration is wrong; flag it.
    Permanent(TenantProblem),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Transient(why) => f.write_str(why),
            Self::Permanent(p) => f.write_str(p.as_str()),
        }
    }
}

/// What Graph said about one message's replies.
#[derive(Default)]
pub(super) struct Delivery {
    pub(super) results: Vec<SendResult>,
    pub(super) sent_sources: Vec<&'static str>,
    pub(super) retry: Option<String>,
    pub(super) token_invalid: bool,
    pub(super) refused: Option<&'static str>,
}

impl Delivery {
    pub(super) fn outcome(self) -> Result<Outcome, Retry> {
        if let Some(reason) = self.retry {
            return Err(Retry(reason));
        }
        match self.refused {
            Some(why) if self.sent_sources.is_empty() => Ok(Outcome::SendFailed(why)),
            _ => Ok(Outcome::Replied(self.sent_sources)),
        }
    }
}
