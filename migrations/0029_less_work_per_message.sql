-- Less work per message on the Lambda path (issue 15's throughput).
--
-- 1. No usage call without a count. The claim and the mark called count_usage for every
--    message although they rarely count anything (an opt-out; a failed send): a PL/pgSQL call
--    with its own settings, a loop over an empty object and a return, twice per message.
--    They now call it only when there is something to count; what is counted is unchanged.
--
-- 2. One index fewer written per message row. Every message is written four times (the
--    claim's insert, the record's update, the reply's insert and its mark, none of them a HOT
--    update: each changes an indexed column), and each write went into eight indexes.
--    `conversations_user_created_idx` (user_id, created_at) repeated
--    `conversations_tenant_user_idx` (bot_tenant_id, user_id, created_at): a customer belongs
--    to one business, and every query that reads one customer's messages names the business
--    too (the hand-overs page now does, see src/admin/handovers.rs).

-- 0026's claim_inbound, calling count_usage only with a count.
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
    returning c.id, (c.xmax = 0) into v_conv, v_new;
    if v_conv is null then
        return jsonb_build_object('claimed', false);
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

-- 0012's record_sent, likewise.
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
    if v_delta <> '{}'::jsonb then
        perform alphadome.count_usage(v_delta);
    end if;
    return jsonb_build_object('retry', v_retry);
end
$$;

drop index if exists public.conversations_user_created_idx;
