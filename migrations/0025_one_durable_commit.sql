-- One durable commit per message: only the step that must be on disk before the reply leaves
-- waits for the WAL flush.
--
-- A message goes through three transactions: the claim, the record of its replies (`pending`)
-- and the mark of what Graph answered. Each waited for its WAL to reach the disk; under load
-- the flushes (LWLock:WALWrite and IO:WALSync in pg_stat_activity) were where the pipeline's
-- connections spent most of their time. Exactly once needs one of them durable: the record,
-- which precedes the send and which the guard against sending twice reads. The other two now
-- commit with `synchronous_commit = off`, set for their own transaction only:
--
-- * The claim. PostgreSQL writes WAL in order and a flush covers everything before it, so
--   the record's durable commit makes the claim before it durable too. A crash before that
--   can lose the claim, but then nothing was sent: the call fails, the queue redelivers and
--   the message is claimed again.
-- * The mark, when every reply was sent (or failed for good). A crash within the WAL
--   writer's delay (200 ms by default) can lose it: the reply was sent and stays `pending`,
--   never sent again — the same state as a worker that died between sending and marking.
--   A mark that hands a send back for a retry (`retry`) stays durable: losing it would leave
--   the message claimed with its reply `pending`, never to be sent.

-- 0015's begin_inbound_batch, committing without waiting for the flush.
create or replace function alphadome.begin_inbound_batch(p jsonb) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_lease interval := coalesce((p ->> 'lease_seconds')::integer, 120) * interval '1 second';
    v_turns integer := coalesce((p ->> 'history_turns')::integer, 6);
    v_month date := date_trunc('month', now() at time zone 'utc')::date;
    v_item jsonb;
    v_one jsonb;
    v_out jsonb[] := '{}';
    v_budget jsonb;
    v_extra jsonb := '{}'::jsonb;
    v_notice boolean := false;
begin
    perform alphadome.act_for_tenant((p ->> 'tenant_id')::uuid);
    perform pg_catalog.set_config('synchronous_commit', 'off', true);
    perform alphadome.begin_usage_batch();
    if alphadome.current_tenant_brand_id() is null then
        raise exception 'begin_inbound: no such tenant';
    end if;
    v_budget := alphadome.budget_state();
    if v_budget ->> 'ratio' is not null then
        v_extra := jsonb_build_object(
            'ai_budget_exhausted', (v_budget ->> 'ratio')::numeric >= 1,
            'budget_percent', floor((v_budget ->> 'ratio')::numeric * 100));
        if (v_budget ->> 'ratio')::numeric >= 0.8 then
            update alphadome.bot_budgets b set notified_month = v_month
             where b.bot_tenant_id = alphadome.current_tenant_id()
               and b.notified_month is distinct from v_month;
            v_notice := found;
        end if;
    end if;
    for v_item in select * from jsonb_array_elements(coalesce(p -> 'items', '[]'::jsonb)) loop
        v_one := alphadome.claim_inbound(v_item, v_lease, v_turns);
        if (v_one ->> 'claimed')::boolean then
            v_one := v_one || v_extra;
            if v_notice then
                v_one := v_one || jsonb_build_object('budget_notice', true);
                v_notice := false;
            end if;
        end if;
        v_out := v_out || v_one;
    end loop;
    if v_notice then
        -- Nothing was claimed: give the notice to the next batch.
        update alphadome.bot_budgets b set notified_month = null
         where b.bot_tenant_id = alphadome.current_tenant_id();
    end if;
    perform alphadome.flush_usage();
    return jsonb_build_object('results', to_jsonb(v_out));
end
$$;

-- 0015's mark_sent_batch: without waiting for the flush unless a send is handed back.
create or replace function alphadome.mark_sent_batch(p jsonb) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_item jsonb;
    v_one jsonb;
    v_out jsonb[] := '{}';
    v_retry boolean := false;
begin
    perform alphadome.act_for_tenant((p ->> 'tenant_id')::uuid);
    perform alphadome.begin_usage_batch();
    for v_item in select * from jsonb_array_elements(coalesce(p -> 'items', '[]'::jsonb)) loop
        v_one := alphadome.record_sent(v_item);
        v_retry := v_retry or coalesce((v_one ->> 'retry')::boolean, false);
        v_out := v_out || v_one;
    end loop;
    perform alphadome.flush_usage();
    if not v_retry then
        perform pg_catalog.set_config('synchronous_commit', 'off', true);
    end if;
    return jsonb_build_object('results', to_jsonb(v_out));
end
$$;
