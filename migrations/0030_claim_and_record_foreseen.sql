-- Claim and record in one call when the answer does not depend on the claim.
--
-- Most messages are answered from the business's FAQ, and that answer depends on the claim
-- only through a few facts: the customer is subscribed, not paused, within the hourly cap,
-- and not on a first contact that earns a welcome. The responder now decides such a message
-- before claiming it, on those facts assumed, and sends the outcome with the claim
-- (`foreseen`: the record's input and the hourly cap). claim_inbound records it in the same
-- transaction when the facts it found are the assumed ones, and returns the recorded replies
-- (`recorded`); otherwise the responder decides on the facts found and records as before.
-- One call per message less, and the claim's answer is the record's.
--
-- A message handed back after its hand-over was recorded (a lost answer) is claimed again
-- without the pause that hand-over set, so the redelivery sends it instead of finding the
-- customer paused by the message itself.
--
-- begin_inbound_batch drops the foreseen outcome of the message that gets the month's budget
-- notice (the notice is one of its replies), and commits as durably as a record when it
-- recorded anything: with the setting it was called with, `off` only inside a combined
-- message whose barrier flushes it.

-- 0029's claim_inbound, recording a foreseen outcome.
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
    v_recorded jsonb;
    v_prior_source text;
begin
    if v_tenant is null or v_brand is null then
        raise exception 'claim_inbound: act_for_tenant first';
    end if;
    perform pg_catalog.set_config('synchronous_commit', 'off', true);

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
         status, status_updated_at, attempt)
    values (v_brand, v_tenant, v_user, 'incoming', p ->> 'text', p ->> 'wa_message_id',
            p ->> 'message_type', 'processing', now(), (p ->> 'attempt')::uuid)
    on conflict (wa_message_id) do update
        set status = 'processing', status_updated_at = now(), attempt = excluded.attempt
        where c.status = 'retry' or (c.status = 'processing' and c.status_updated_at < now() - p_lease)
    returning c.id, (c.xmax = 0), c.reply_source into v_conv, v_new, v_prior_source;
    if v_conv is null then
        return jsonb_build_object('claimed', false);
    end if;
    if v_prior_source = 'escalation' then
        -- Handed back after its hand-over was recorded and never sent: the pause is this
        -- message's own, and the hand-over still has to reach the customer and the owner.
        v_paused := null;
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
    if v_delta <> '{}'::jsonb then
        perform alphadome.count_usage(v_delta);
    end if;

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

    -- The outcome the responder foresaw, recorded now when the facts it assumed hold: a
    -- subscribed customer, not paused, within the hourly cap, and not a first contact unless
    -- that changes nothing (no welcome message).
    if p ? 'foreseen' and p ->> 'intent' is null and v_was_sub
       and (v_paused is null or v_paused <= now())
       and v_count is not null and v_count <= (p -> 'foreseen' ->> 'cap')::integer
       and (not v_first or coalesce((p -> 'foreseen' ->> 'first_contact_too')::boolean, false)) then
        v_recorded := alphadome.record_outcome((p -> 'foreseen' -> 'record') || jsonb_build_object(
            'wa_message_id', p ->> 'wa_message_id',
            'attempt', p ->> 'attempt',
            'user_id', v_user)) -> 'replies';
    end if;

    return jsonb_build_object(
        'claimed', true,
        'recorded', v_recorded,
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

-- 0015's begin_inbound_batch, with the notice and the durability of a foreseen record.
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
    -- `off` inside a combined message whose barrier flushes it, else `on`.
    v_sync text := pg_catalog.current_setting('synchronous_commit');
    v_recorded boolean := false;
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
        if v_notice then
            -- This message gets the budget notice: its outcome is decided after the claim.
            v_item := v_item - 'foreseen';
        end if;
        v_one := alphadome.claim_inbound(v_item, v_lease, v_turns);
        v_recorded := v_recorded or coalesce(v_one -> 'recorded', 'null'::jsonb) <> 'null'::jsonb;
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
    if v_recorded then
        -- Replies recorded as sendable: this commit is as durable as a record's.
        perform pg_catalog.set_config('synchronous_commit', v_sync, true);
    end if;
    return jsonb_build_object('results', to_jsonb(v_out));
end
$$;

-- A message and its reply now commit together, and now() is the transaction's start: each
-- row takes the time it is written, so a reply never sorts before the message it answers
-- (the dashboard's thread, the AI's history).
alter table public.conversations alter column created_at set default pg_catalog.clock_timestamp();
