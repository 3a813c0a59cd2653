//! The overview's figures, read as the owner: inside a transaction that has become
//! `authenticated` with the verified claims in `request.jwt.claims` (as PostgREST does), so
//! row-level security decides what the owner sees, never the application's role.

use anyhow::Context;
use sqlx::{PgPool, Postgres, Transaction};

use super::auth::Owner;

/// One business's overview.
#[derive(Debug, Clone, Default)]
pub struct Overview {
    pub business_name: Option<String>,
    pub tenants: Vec<TenantLine>,
    pub received_today: i64,
    pub replies_today: i64,
    /// Conversations waiting for a person (the hand-overs page).
    pub open_handovers: i64,
    /// Today: how often the hourly cap kept the assistant silent, and sends that failed.
    pub cap_hits_today: i64,
    pub failed_sends_today: i64,
}

impl Overview {
    /// What the owner should act on, one sentence each.
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .tenants
            .iter()
            .filter(|t| t.needs_token_refresh)
            .map(|t| {
                format!(
                    "{}: WhatsApp refused this number's token. Replace it under Settings, or \
the assistant cannot reply.",
                    t.name
                )
            })
            .collect();
        if self.cap_hits_today > 0 {
            out.push(format!(
                "The hourly cap was reached today: {} messages were left unanswered. You can \
raise it under Settings.",
                self.cap_hits_today
            ));
        }
        if self.failed_sends_today > 0 {
            out.push(format!(
                "{} messages could not be delivered today (see Conversations for WhatsApp's reason).",
                self.failed_sends_today
            ));
        }
        out
    }
}

#[derive(Debug, Clone)]
pub struct TenantLine {
    pub id: uuid::Uuid,
    pub name: String,
    pub is_active: bool,
    /// The assistant's switch (`bot_control_settings.is_bot_enabled`).
    pub assistant_enabled: bool,
    /// Graph refused the token (error 190): the owner must replace it.
    pub needs_token_refresh: bool,
}

/// Opens a transaction as the owner: `set local role authenticated` and the claims set
/// locally, both undone at commit or rollback.
pub async fn begin_as_owner(
    pool: &PgPool,
    owner: &Owner,
) -> anyhow::Result<Transaction<'static, Postgres>> {
    let mut tx = pool
        .begin()
        .await
        .context("starting the owner's transaction")?;
    sqlx::query("select set_config('request.jwt.claims', $1, true)")
        .persistent(false)
        .bind(owner.claims.to_string())
        .execute(&mut *tx)
        .await
        .context("setting the owner's claims")?;
    sqlx::query("set local role authenticated")
        .persistent(false)
        .execute(&mut *tx)
        .await
        .context("becoming authenticated")?;
    Ok(tx)
}

/// Reads the overview as `owner`.
pub async fn read_overview(pool: &PgPool, owner: &Owner) -> anyhow::Result<Overview> {
    let mut tx = begin_as_owner(pool, owner).await?;
    let business_name: Option<String> =
        sqlx::query_scalar("select name from public.brands order by name limit 1")
            .persistent(false)
            .fetch_optional(&mut *tx)
            .await
            .context("reading the brand")?
            .flatten();
    let tenants = sqlx::query_as::<_, (uuid::Uuid, String, bool, Option<bool>, bool)>(
        "select t.id, t.client_name, t.is_active, s.is_bot_enabled, t.needs_token_refresh
         from alphadome.bot_tenants t
         left join alphadome.bot_control_settings s on s.bot_tenant_id = t.id
         order by t.client_name, t.id",
    )
    .persistent(false)
    .fetch_all(&mut *tx)
    .await
    .context("reading the tenants")?
    .into_iter()
    .map(
        |(id, name, is_active, on, needs_token_refresh)| TenantLine {
            id,
            name,
            is_active,
            assistant_enabled: on.unwrap_or(true),
            needs_token_refresh,
        },
    )
    .collect();
    // Today's figures come from the usage the pipeline counts (the usage page's table).
    let (received_today, replies_today, cap_hits_today, failed_sends_today): (i64, i64, i64, i64) =
        sqlx::query_as(
            "select coalesce(sum((u.counts ->> 'received')::bigint), 0)::bigint,
                coalesce(sum((u.counts ->> 'messages_out')::bigint), 0)::bigint,
                coalesce(sum((u.counts ->> 'cap_hits')::bigint), 0)::bigint,
                coalesce(sum((u.counts ->> 'failed_sends')::bigint), 0)::bigint
         from alphadome.bot_usage_daily u
         where u.day = (now() at time zone 'utc')::date",
        )
        .persistent(false)
        .fetch_one(&mut *tx)
        .await
        .context("counting today's messages")?;
    let open_handovers = super::handovers::count_open(&mut tx).await?;
    tx.commit()
        .await
        .context("ending the owner's transaction")?;
    Ok(Overview {
        business_name,
        tenants,
        received_today,
        replies_today,
        open_handovers,
        cap_hits_today,
        failed_sends_today,
    })
}
