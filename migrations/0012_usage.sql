-- Usage per tenant per day, delivery reasons, prices for estimates, and monthly budgets
-- (issue 13).
--
-- The counts are written by the pipeline's batch functions that already run for every
-- message (begin_inbound_batch, record_replies_batch, mark_sent_batch, apply_status): no
-- statement of ours adds a round trip. Each function below is 0009's (0006's for
-- apply_status) with the counting added; inputs, signatures and outputs stay as they were,
-- except for keys added to outputs (callers ignore keys they do not know).
--
-- Counting is idempotent where a retry repeats work that was already counted: a message is
-- received once (the claim that inserted its row), a reply is counted when its row is
-- inserted, an outcome (hand-over, cap hit) when the inbound row gets its first outcome, a
-- failed send or a Meta pricing category when the row changes. AI calls and tokens are
-- counted every time the AI is really called: a retry that calls it again really spends.

---------------------------------------------------------------------------------------------
-- alphadome.bot_usage_daily: one row per tenant per UTC day. `counts` is a flat object of
-- counter name -> number, so a new counter needs no migration:
--   received, received:<message_type>, reply:<source> (faq, canned, ai, fallback,
--   escalation, person, control, welcome), handovers, cap_hits, opt_outs, silent:<note>,
--   ai_calls, ai_prompt_tokens, ai_completion_tokens, ai_cached_tokens, messages_out,
--   failed_sends, failed:<graph error code>, outbound:<pricing category>,
--   billable:<pricing category>, budget_notices, ai_budget_stops.
create table if not exists alphadome.bot_usage_daily (
    bot_tenant_id uuid not null references alphadome.bot_tenants (id) on delete cascade,
    day date not null,
    counts jsonb not null default '{}'::jsonb,
    updated_at timestamptz not null default now(),
    primary key (bot_tenant_id, day)
);

-- Adds two flat counter objects key by key. Plain SQL, schema-qualified.
create or replace function alphadome.add_counts(a jsonb, b jsonb) returns jsonb
language sql immutable
set search_path = ''
as $$
    select coalesce(pg_catalog.jsonb_object_agg(k.key,
               coalesce((a ->> k.key)::bigint, 0) + coalesce((b ->> k.key)::bigint, 0)),
           '{}'::jsonb)
    from (select pg_catalog.jsonb_object_keys(coalesce(a, '{}'::jsonb)) as key
          union
          select pg_catalog.jsonb_object_keys(coalesce(b, '{}'::jsonb))) k
$$;

-- Adds `delta` to today's row of the tenant this transaction acts for. Nothing to add: no write.
create or replace function alphadome.count_usage(delta jsonb) returns void
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_tenant uuid := alphadome.current_tenant_id();
    v_delta jsonb;
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
    insert into alphadome.bot_usage_daily as u (bot_tenant_id, day, counts)
    values (v_tenant, (now() at time zone 'utc')::date, v_delta)
    on conflict (bot_tenant_id, day) do update
        set counts = alphadome.add_counts(u.counts, excluded.counts), updated_at = now();
end
$$;

---------------------------------------------------------------------------------------------
-- Delivery reasons and AI cost per message.
alter table public.conversations add column if not exists error_title text;
alter table public.conversations add column if not exists pricing_category text;
alter table public.conversations add column if not exists pricing_billable boolean;
alter table public.conversations add column if not exists pricing_type text;
alter table public.conversations add column if not exists ai_cached_tokens integer;

---------------------------------------------------------------------------------------------
-- Prices for cost ESTIMATES, changed by the operator (`update alphadome.platform_prices`).
-- AI rows are USD per million tokens; Meta rows (`meta:<category>`) USD per billable message.
-- They are estimates: real bills come from OpenAI and Meta, whose rates vary by model,
-- country and volume tier.
create table if not exists alphadome.platform_prices (
    item text primary key,
    usd numeric not null check (usd >= 0),
    unit text not null,
    note text,
    updated_at timestamptz not null default now()
);
insert into alphadome.platform_prices (item, usd, unit, note) values
    ('ai_prompt_tokens', 0.15, 'per million tokens', 'gpt-4o-mini input'),
    ('ai_cached_tokens', 0.075, 'per million tokens', 'gpt-4o-mini cached input'),
    ('ai_completion_tokens', 0.60, 'per million tokens', 'gpt-4o-mini output'),
    ('meta:service', 0, 'per billable message', 'customer-service replies are free'),
    ('meta:utility', 0.004, 'per billable message', 'varies by country'),
    ('meta:marketing', 0.025, 'per billable message', 'varies by country'),
    ('meta:authentication', 0.0035, 'per billable message', 'varies by country')
on conflict (item) do nothing;

---------------------------------------------------------------------------------------------
-- Monthly budgets, set by the operator (`alphadome tenant set-budget`). NULL: no limit.
-- `notified_month`: the month whose 80 % notice went out (once per month).
-- `exhausted_month`: the month in which the AI stopped for the budget (logged once).
create table if not exists alphadome.bot_budgets (
    bot_tenant_id uuid primary key references alphadome.bot_tenants (id) on delete cascade,
    monthly_ai_tokens bigint check (monthly_ai_tokens > 0),
    monthly_messages bigint check (monthly_messages > 0),
    notified_month date,
    exhausted_month date,
    updated_at timestamptz not null default now()
);

-- This month's use against the budget of the tenant this transaction acts for:
-- {ai_tokens, messages, ai_budget, message_budget, ratio} (ratio: the larger of the two, or
-- null without a budget). Reads at most 31 rows by primary key.
create or replace function alphadome.budget_state() returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
    v_tenant uuid := alphadome.current_tenant_id();
    v_ai bigint;
    v_msgs bigint;
    v_ai_budget bigint;
    v_msg_budget bigint;
begin
    select b.monthly_ai_tokens, b.monthly_messages into v_ai_budget, v_msg_budget
    from alphadome.bot_budgets b where b.bot_tenant_id = v_tenant;
    if v_ai_budget is null and v_msg_budget is null then
        return jsonb_build_object('ratio', null);
    end if;
    select coalesce(sum(coalesce((u.counts ->> 'ai_prompt_tokens')::bigint, 0)
                        + coalesce((u.counts ->> 'ai_completion_tokens')::bigint, 0)), 0),
           coalesce(sum(coalesce((u.counts ->> 'messages_out')::bigint, 0)), 0)
      into v_ai, v_msgs
    from alphadome.bot_usage_daily u
    where u.bot_tenant_id = v_tenant
      and u.day >= date_trunc('month', now() at time zone 'utc')::date;
    return jsonb_build_object(
        'ai_tokens', v_ai, 'messages', v_msgs,
        'ai_budget', v_ai_budget, 'message_budget', v_msg_budget,
        'ratio', greatest(v_ai::numeric / v_ai_budget, v_msgs::numeric / v_msg_budget));
end
$$;

---------------------------------------------------------------------------------------------
-- Privileges and row-level security, as 0010 for every tenant table: enabled and FORCED, the
-- operator's explicit policy, owners read their own tenants' rows only, the functions' role
-- writes for the tenant it acts for only.
grant select, insert, update on alphadome.bot_usage_daily to alphadome_app;
grant select, update (notified_month, exhausted_month) on alphadome.bot_budgets to alphadome_app;
revoke all on alphadome.bot_usage_daily, alphadome.bot_budgets, alphadome.platform_prices
    from anon, authenticated;
grant select on alphadome.bot_usage_daily, alphadome.bot_budgets to authenticated;
-- Prices are the operator's; owners see estimates computed from them, not the table.

do $$
declare
    t text;
begin
    foreach t in array array['alphadome.bot_usage_daily', 'alphadome.bot_budgets',
                             'alphadome.platform_prices'] loop
        execute format('alter table %s enable row level security', t);
        execute format('alter table %s force row level security', t);
        execute format('drop policy if exists operator_all on %s', t);
        execute format(
            'create policy operator_all on %s for all to alphadome_operator using (true) with check (true)',
            t);
    end loop;
    foreach t in array array['alphadome.bot_usage_daily', 'alphadome.bot_budgets'] loop
        execute format('drop policy if exists owner_reads_own_usage on %s', t);
        execute format($p$
            create policy owner_reads_own_usage on %s
                for select to authenticated
                using (bot_tenant_id = any ((select alphadome.jwt_tenant_ids())::uuid[]))
        $p$, t);
        execute format('drop policy if exists app_own_tenant on %s', t);
        execute format($p$
            create policy app_own_tenant on %s
                for all to alphadome_app
                using (bot_tenant_id = (select alphadome.current_tenant_id()))
                with check (bot_tenant_id = (select alphadome.current_tenant_id()))
        $p$, t);
    end loop;
end
$$;

---------------------------------------------------------------------------------------------
-- The pipeline, counting.

-- 0009's claim_inbound; counts received (by type) on the claim that inserts the row, and an
-- opt-out when a subscribed customer says STOP.
create or replace function alphadome.claim_inbound(p jsonb, p_lease interval, p_turns integer)
returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_tenant uuid := alphadome.current_tenant_id();
    v_brand uuid := alphadome.current_tenant_brand_id();
    v_user uuid;
    v_first boolean := false;
    v_paused timestamptz;
    v_conv uuid;
    v_new boolean;
    v_was_sub boolean;
    v_count integer;
    v_history jsonb := '[]'::jsonb;
    v_delta jsonb := '{}'::jsonb;
begin
    if v_tenant is null or v_brand is null then
        raise exception 'claim_inbound: act_for_tenant first';
    end if;

    if p ->> 'phone' is not null then
        insert into public.users as u (bot_tenant_id, brand_id, phone, wa_user_id, full_name, last_inbound_at)
        values (v_tenant, v_brand, p ->> 'phone', p ->> 'user_id', p ->> 'profile_name', now())
        on conflict (bot_tenant_id, phone) where bot_tenant_id is not null and phone is not null
        do update set full_name = coalesce(excluded.full_name, u.full_name),
                      wa_user_id = coalesce(u.wa_user_id, excluded.wa_user_id),
                      last_inbound_at = now()
        returning u.id, (u.xmax = 0), u.bot_paused_until into v_user, v_first, v_paused;
    elsif p ->> 'user_id' is not null then
        insert into public.users as u (bot_tenant_id, brand_id, wa_user_id, full_name, last_inbound_at)
        values (v_tenant, v_brand, p ->> 'user_id', p ->> 'profile_name', now())
        on conflict (bot_tenant_id, wa_user_id) where bot_tenant_id is not null and wa_user_id is not null
        do update set full_name = coalesce(excluded.full_name, u.full_name), last_inbound_at = now()
        returning u.id, (u.xmax = 0), u.bot_paused_until into v_user, v_first, v_paused;
    end if;

    insert into public.conversations as c
        (brand_id, bot_tenant_id, user_id, direction, message_text, wa_message_id, message_type,
         status, status_updated_at)
    values (v_brand, v_tenant, v_user, 'incoming', p ->> 'text', p ->> 'wa_message_id',
            p ->> 'message_type', 'processing', now())
    on conflict (wa_message_id) do update
        set status = 'processing', status_updated_at = now()
        where c.status = 'retry' or (c.status = 'processing' and c.status_updated_at < now() - p_lease)
    returning c.id, (c.xmax = 0) into v_conv, v_new;
    if v_conv is null then
        return jsonb_build_object('claimed', false);
    end if;
    if v_new then
        v_delta := jsonb_build_object('received', 1,
            'received:' || coalesce(p ->> 'message_type', 'unknown'), 1);
    end if;

    if v_user is not null then
        select s.is_subscribed into v_was_sub
        from public.subscriptions s
        where s.bot_tenant_id = v_tenant and s.user_id = v_user;
        if p ->> 'intent' in ('stop', 'start') then
            insert into public.subscriptions as s (bot_tenant_id, brand_id, user_id, is_subscribed, updated_at)
            values (v_tenant, v_brand, v_user, p ->> 'intent' = 'start', now())
            on conflict (bot_tenant_id, user_id) where bot_tenant_id is not null
            do update set is_subscribed = excluded.is_subscribed, updated_at = now();
        end if;
    end if;
    v_was_sub := coalesce(v_was_sub, true);
    if v_new and p ->> 'intent' = 'stop' and v_was_sub then
        v_delta := v_delta || jsonb_build_object('opt_outs', 1);
    end if;
    perform alphadome.count_usage(v_delta);

    if coalesce((p ->> 'count_reply')::boolean, false) and v_was_sub
       and (v_paused is null or v_paused <= now()) then
        insert into alphadome.bot_usage_counters as k (bot_tenant_id, hour_start, replies)
        values (v_tenant, date_trunc('hour', now()), 1)
        on conflict (bot_tenant_id, hour_start) do update set replies = k.replies + 1
        returning k.replies into v_count;
    end if;

    if coalesce((p ->> 'with_history')::boolean, false) and v_user is not null then
        select coalesce(jsonb_agg(jsonb_build_object('direction', h.direction, 'text', h.message_text)
                                  order by h.created_at), '[]'::jsonb)
        into v_history
        from (
            select c.direction, c.message_text, c.created_at
            from public.conversations c
            where c.bot_tenant_id = v_tenant and c.user_id = v_user and c.id <> v_conv
              and c.message_text is not null
            order by c.created_at desc
            limit p_turns
        ) h;
    end if;

    return jsonb_build_object(
        'claimed', true,
        'conversation_id', v_conv,
        'user_id', v_user,
        'first_contact', v_first,
        'was_subscribed', v_was_sub,
        'paused_until', v_paused,
        'replies_this_hour', v_count,
        'history', v_history
    );
end
$$;

-- 0009's begin_inbound_batch. Each claimed result also carries the tenant's budget state:
--   ai_budget_exhausted  this month's AI tokens or messages reached 100 % of a budget: the
--                        AI stops for this tenant (FAQ answers and hand-overs go on);
--   budget_notice        on one result only, once per month: usage passed 80 %, tell the
--                        owner (the month is marked in the same transaction, so only one
--                        batch ever gets it);
--   budget_percent       the larger of the two uses, in percent of its budget.
-- Without a budget none of these keys is present.
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
    return jsonb_build_object('results', to_jsonb(v_out));
end
$$;

-- 0009's record_outcome; counts replies by source (when their rows are inserted), messages
-- out, the outcome (hand-over, cap hit, silence) once per inbound message, and every AI call
-- with its tokens. New optional input keys: ai_calls, ai_cached_tokens, budget_stop.
create or replace function alphadome.record_outcome(p jsonb) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_tenant uuid := alphadome.current_tenant_id();
    v_brand uuid := alphadome.current_tenant_brand_id();
    v_inbound text := p ->> 'wa_message_id';
    v_user uuid := (p ->> 'user_id')::uuid;
    v_reply jsonb;
    v_id uuid;
    v_status text;
    v_send boolean;
    v_out jsonb := '[]'::jsonb;
    v_first_outcome boolean;
    v_delta jsonb := '{}'::jsonb;
begin
    if v_tenant is null or v_brand is null then
        raise exception 'record_outcome: act_for_tenant first';
    end if;

    select c.reply_source is null and c.note is null into v_first_outcome
    from public.conversations c
    where c.wa_message_id = v_inbound and c.direction = 'incoming';

    update public.conversations c
       set status = p ->> 'inbound_status',
           note = p ->> 'note',
           reply_source = p ->> 'reply_source',
           matched_entry_id = (p ->> 'matched_entry_id')::uuid,
           ai_prompt_tokens = (p ->> 'ai_prompt_tokens')::integer,
           ai_completion_tokens = (p ->> 'ai_completion_tokens')::integer,
           ai_cached_tokens = (p ->> 'ai_cached_tokens')::integer,
           status_updated_at = now()
     where c.wa_message_id = v_inbound and c.direction = 'incoming';

    if coalesce((p ->> 'pause_minutes')::integer, 0) > 0 and v_user is not null then
        update public.users u
           set bot_paused_until = now() + ((p ->> 'pause_minutes')::integer * interval '1 minute')
         where u.id = v_user;
    end if;

    for v_reply in select * from jsonb_array_elements(coalesce(p -> 'replies', '[]'::jsonb)) loop
        v_id := null;
        select c.id, c.status into v_id, v_status
        from public.conversations c
        where c.in_reply_to = v_inbound and c.reply_source = v_reply ->> 'source'
          and c.direction = 'outgoing';
        if v_id is null then
            insert into public.conversations
                (brand_id, bot_tenant_id, user_id, direction, message_text, message_type, status,
                 status_updated_at, reply_source, in_reply_to, matched_entry_id,
                 ai_prompt_tokens, ai_completion_tokens)
            values (v_brand, v_tenant,
                    case when coalesce((v_reply ->> 'to_customer')::boolean, true) then v_user end,
                    'outgoing', v_reply ->> 'text', 'text', 'pending', now(),
                    v_reply ->> 'source', v_inbound, (p ->> 'matched_entry_id')::uuid,
                    (p ->> 'ai_prompt_tokens')::integer, (p ->> 'ai_completion_tokens')::integer)
            returning id into v_id;
            v_send := true;
            v_delta := alphadome.add_counts(v_delta, jsonb_build_object(
                'reply:' || (v_reply ->> 'source'), 1, 'messages_out', 1));
        elsif v_status = 'retry' then
            update public.conversations c
               set status = 'pending', message_text = v_reply ->> 'text', status_updated_at = now()
             where c.id = v_id;
            v_send := true;
        else
            v_send := false;
        end if;
        v_out := v_out || jsonb_build_array(jsonb_build_object(
            'id', v_id, 'source', v_reply ->> 'source', 'send', v_send));
    end loop;

    if coalesce(v_first_outcome, false) then
        if p ->> 'reply_source' = 'escalation' then
            v_delta := v_delta || jsonb_build_object('handovers', 1);
        end if;
        if p ->> 'note' = 'hourly_limit' then
            v_delta := v_delta || jsonb_build_object('cap_hits', 1);
        end if;
        if p ->> 'note' is not null then
            v_delta := v_delta || jsonb_build_object('silent:' || (p ->> 'note'), 1);
        end if;
        if coalesce((p ->> 'budget_stop')::boolean, false) then
            v_delta := v_delta || jsonb_build_object('ai_budget_stops', 1);
        end if;
    end if;
    v_delta := v_delta || jsonb_build_object(
        'ai_calls', coalesce((p ->> 'ai_calls')::integer, 0),
        'ai_prompt_tokens', coalesce((p ->> 'ai_prompt_tokens')::bigint, 0),
        'ai_completion_tokens', coalesce((p ->> 'ai_completion_tokens')::bigint, 0),
        'ai_cached_tokens', coalesce((p ->> 'ai_cached_tokens')::bigint, 0));
    perform alphadome.count_usage(v_delta);
    return jsonb_build_object('replies', v_out);
end
$$;

-- 0009's record_sent; a reply Graph refused for good counts as a failed send, by code, and
-- keeps its code (error_title when given).
create or replace function alphadome.record_sent(p jsonb) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_tenant uuid := alphadome.current_tenant_id();
    v_result jsonb;
    v_retry boolean := false;
    v_moved integer;
    v_delta jsonb := '{}'::jsonb;
begin
    if v_tenant is null then
        raise exception 'record_sent: act_for_tenant first';
    end if;
    for v_result in select * from jsonb_array_elements(coalesce(p -> 'results', '[]'::jsonb)) loop
        update public.conversations c
           set status = case
                   when alphadome.delivery_rank(c.status) > alphadome.delivery_rank(v_result ->> 'status')
                   then c.status else v_result ->> 'status' end,
               wa_message_id = coalesce(v_result ->> 'sent_wa_message_id', c.wa_message_id),
               error_code = (v_result ->> 'error_code')::integer,
               error_title = coalesce(v_result ->> 'error_title', c.error_title),
               status_updated_at = now()
         where c.id = (v_result ->> 'id')::uuid
           and (v_result ->> 'status' <> 'failed' or c.status is distinct from 'failed');
        get diagnostics v_moved = row_count;
        if v_result ->> 'status' = 'failed' and v_moved > 0 then
            v_delta := alphadome.add_counts(v_delta, jsonb_build_object('failed_sends', 1,
                'failed:' || coalesce(v_result ->> 'error_code', 'none'), 1));
        end if;
        if v_result ->> 'status' = 'retry' then
            v_retry := true;
        end if;
    end loop;
    if v_retry then
        update public.conversations c set status = 'retry', status_updated_at = now()
         where c.wa_message_id = p ->> 'wa_message_id' and c.direction = 'incoming';
    end if;
    if coalesce((p ->> 'token_invalid')::boolean, false) then
        update alphadome.bot_tenants t set needs_token_refresh = true where t.id = v_tenant;
    end if;
    perform alphadome.count_usage(v_delta);
    return jsonb_build_object('retry', v_retry);
end
$$;

-- 0006's apply_status. The status still only moves forward; the error's title and Meta's
-- pricing (category, billable, type) are kept on the row whatever the order statuses arrive
-- in. Counted: outbound:<category> and billable:<category> once per message (when its
-- category is first recorded), a delivery failure once (failed_sends, failed:<code>).
-- Out: {updated}: whether the status moved, as before.
create or replace function alphadome.apply_status(p jsonb) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_id uuid;
    v_old text;
    v_cat text;
    v_moves boolean;
    v_new_cat text := nullif(p ->> 'pricing_category', '');
    v_delta jsonb := '{}'::jsonb;
begin
    perform alphadome.act_for_tenant((p ->> 'tenant_id')::uuid);
    select c.id, c.status, c.pricing_category into v_id, v_old, v_cat
    from public.conversations c
    where c.wa_message_id = p ->> 'wa_message_id' and c.direction = 'outgoing'
    for update;
    if v_id is null then
        return jsonb_build_object('updated', 0);
    end if;
    v_moves := alphadome.delivery_rank(v_old) < alphadome.delivery_rank(p ->> 'status');
    if not v_moves and (v_cat is not null or v_new_cat is null) then
        return jsonb_build_object('updated', 0);
    end if;
    update public.conversations c
       set status = case when v_moves then p ->> 'status' else c.status end,
           error_code = case when v_moves then coalesce((p ->> 'error_code')::integer, c.error_code)
                             else c.error_code end,
           error_title = case when v_moves then coalesce(p ->> 'error_title', c.error_title)
                              else c.error_title end,
           pricing_category = coalesce(c.pricing_category, v_new_cat),
           pricing_billable = coalesce(c.pricing_billable, (p ->> 'pricing_billable')::boolean),
           pricing_type = coalesce(c.pricing_type, p ->> 'pricing_type'),
           status_updated_at = case when v_moves then now() else c.status_updated_at end
     where c.id = v_id;
    if v_cat is null and v_new_cat is not null then
        v_delta := jsonb_build_object('outbound:' || v_new_cat, 1);
        if coalesce((p ->> 'pricing_billable')::boolean, false) then
            v_delta := v_delta || jsonb_build_object('billable:' || v_new_cat, 1);
        end if;
    end if;
    if v_moves and p ->> 'status' = 'failed' and v_old is distinct from 'failed' then
        v_delta := v_delta || jsonb_build_object('failed_sends', 1,
            'failed:' || coalesce(p ->> 'error_code', 'none'), 1);
    end if;
    perform alphadome.count_usage(v_delta);
    return jsonb_build_object('updated', case when v_moves then 1 else 0 end);
end
$$;

revoke all on function alphadome.add_counts(jsonb, jsonb), alphadome.count_usage(jsonb),
    alphadome.budget_state() from public;
grant execute on function alphadome.add_counts(jsonb, jsonb), alphadome.count_usage(jsonb),
    alphadome.budget_state() to alphadome_app;
grant execute on function alphadome.add_counts(jsonb, jsonb) to authenticated, service_role;
