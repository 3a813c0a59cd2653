//! The owner's hand-over notice when Meta refuses it as free text: outside the owner's
//! 24-hour window (131047) only an approved template arrives, so it is sent again as the
//! tenant's escalation template.

use secrecy::SecretString;

use super::plan::Incoming;
use super::{policy, Outbox, Responder, TenantContext};
use crate::whatsapp::{Recipient, SendError};

/// Graph's code for a free-form message outside the recipient's 24-hour window.
pub(super) const OUTSIDE_WINDOW: i64 = 131047;

/// Whether a failed send of `source` is a hand-over notice the template can still deliver.
pub(super) fn is_refused_notice(source: &str, error: &SendError) -> bool {
    source == "escalation"
        && matches!(
            error,
            SendError::Rejected {
                code: Some(OUTSIDE_WINDOW),
                ..
            }
        )
}

impl Responder {
    /// Sends the hand-over notice for `msg` to `owner` as the tenant's approved template.
    /// Without a template the free-text refusal stands (logged: the owner was not told).
    pub(super) async fn notice_as_template(
        &self,
        ctx: &TenantContext,
        token: Option<&SecretString>,
        msg: &Incoming<'_>,
        owner: &Recipient,
        tag: &str,
        refused: SendError,
    ) -> Result<Vec<String>, SendError> {
        let (Outbox::Graph(client), Some(token)) = (&self.outbox, token) else {
            return Err(refused);
        };
        let Some((name, language)) = ctx.settings.escalation_template() else {
            tracing::warn!(
                "the owner's hand-over notice was refused outside their 24-hour window (131047) \
                 and the tenant has no escalation template: the owner was not told \
                 (set one with `alphadome tenant set-escalation-template`)"
            );
            return Err(refused);
        };
        let m = msg.m;
        let parameters = policy::escalation_template_parameters(
            &ctx.record.tenant.client_name,
            m.sender().unwrap_or("unknown"),
            m.profile_name.as_deref(),
            msg.text,
            &m.message_type,
        );
        match client
            .send_template(
                msg.phone_number_id,
                token,
                owner,
                name,
                language,
                &parameters,
                Some(tag),
            )
            .await
        {
            Ok(id) => {
                tracing::info!(
                    template = name,
                    "hand-over notice refused as free text (131047); sent as the tenant's template"
                );
                Ok(vec![id])
            }
            Err(e) => {
                tracing::warn!(error = %e, template = name, "the hand-over template was refused too: the owner was not told");
                Err(e)
            }
        }
    }
}
