-- Usage counted once per batch call, not once per message and step.
--
-- 0012 added each message's counts to the tenant's daily row as it went: up to three upserts
-- of that one row per message, each a new row version and its WAL, which under load cost a
-- share of the pipeline's throughput (PostgreSQL's WAL writes were the main wait). Inside a
-- batch call the counts now gather in a transaction-local setting and reach the row in one
-- upsert at the end of the call. Outside a batch (apply_status, the single-message
-- wrappers' callers) count_usage still writes at once. Same counts, same round trips.

-- Marks this transaction as a batch: count_usage gathers instead of writing.
create or replace function alphadome.begin_usage_batch() returns void
language sql
volatile
set search_path = ''
as $$
    select pg_catalog.set_config('alphadome.usage_batch', 'on', true),
           pg_catalog.set_config('alphadome.usage_pending', '', true);
$$;

-- Adds `delta` to today's row of the tenant this transaction acts for, or gathers it when a
-- batch is running. Nothing to add: no write.
create or replace function alphadome.count_usage(delta jsonb) returns void
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_tenant uuid := alphadome.current_tenant_id();
    v_delta jsonb;
    v_pending jsonb;
begin
    if v_tenant is null then
        raise exception 'count_usage: act_for_tenant first';
    end if;
    -- Zeros and nulls are left out, so an empty delta writes nothing.
    select coalesce(pg_catalog.jsonb_object_agg(e.key, e.value), '{}'::jsonb) into v_delta
    from pg_catalog.jsonb_each(coalesce(delta, '{}'::jsonb)) e
    where pg_catalog.jsonb_typeof(e.value) = 'number' and (e.value #>> '{}')::bigint <> 0;
    if v_delta = '{}'::jsonb then
        return;
    end if;
    if pg_catalog.current_setting('alphadome.usage_batch', true) = 'on' then
        v_pending := nullif(pg_catalog.current_setting('alphadome.usage_pending', true), '')::jsonb;
        perform pg_catalog.set_config('alphadome.usage_pending',
            alphadome.add_counts(v_pending, v_delta)::text, true);
        return;
    end if;
    insert into alphadome.bot_usage_daily as u (bot_tenant_id, day, counts)
    values (v_tenant, (now() at time zone 'utc')::date, v_delta)
    on conflict (bot_tenant_id, day) do update
        set counts = alphadome.add_counts(u.counts, excluded.counts), updated_at = now();
end
$$;

-- Writes what a batch gathered, in one upsert, and ends the batch.
create or replace function alphadome.flush_usage() returns void
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_pending jsonb := nullif(pg_catalog.current_setting('alphadome.usage_pending', true), '')::jsonb;
begin
    perform pg_catalog.set_config('alphadome.usage_batch', '', true);
    perform pg_catalog.set_config('alphadome.usage_pending', '', true);
    if v_pending is null or v_pending = '{}'::jsonb then
        return;
    end if;
    insert into alphadome.bot_usage_daily as u (bot_tenant_id, day, counts)
    values (alphadome.current_tenant_id(), (now() at time zone 'utc')::date, v_pending)
    on conflict (bot_tenant_id, day) do update
        set counts = alphadome.add_counts(u.counts, excluded.counts), updated_at = now();
end
$$;

-- 0012's begin_inbound_batch, counting once.
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

-- 0009's record_replies_batch, counting once.
create or replace function alphadome.record_replies_batch(p jsonb) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_item jsonb;
    v_out jsonb[] := '{}';
begin
    perform alphadome.act_for_tenant((p ->> 'tenant_id')::uuid);
    perform alphadome.begin_usage_batch();
    for v_item in select * from jsonb_array_elements(coalesce(p -> 'items', '[]'::jsonb)) loop
        v_out := v_out || alphadome.record_outcome(v_item);
    end loop;
    perform alphadome.flush_usage();
    return jsonb_build_object('results', to_jsonb(v_out));
end
$$;

-- 0009's mark_sent_batch, counting once.
create or replace function alphadome.mark_sent_batch(p jsonb) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_item jsonb;
    v_out jsonb[] := '{}';
begin
    perform alphadome.act_for_tenant((p ->> 'tenant_id')::uuid);
    perform alphadome.begin_usage_batch();
    for v_item in select * from jsonb_array_elements(coalesce(p -> 'items', '[]'::jsonb)) loop
        v_out := v_out || alphadome.record_sent(v_item);
    end loop;
    perform alphadome.flush_usage();
    return jsonb_build_object('results', to_jsonb(v_out));
end
$$;

revoke all on function alphadome.begin_usage_batch(), alphadome.flush_usage() from public;
grant execute on function alphadome.begin_usage_batch(), alphadome.flush_usage() to alphadome_app;
