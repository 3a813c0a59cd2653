-- The pipeline's second round of savings, from `pg_stat_user_functions` under load:
--   * act_for_tenant and delivery_rank lose their `set search_path` clause (saving and
--     restoring a setting on every call; and delivery_rank can now be inlined) and qualify
--     what they call instead, which keeps them immune to search_path tricks;
--   * begin_inbound and record_replies take the brand act_for_tenant already recorded instead
--     of looking it up again.

create or replace function alphadome.delivery_rank(p_status text) returns integer
language sql immutable
as $$
    select case p_status
        when 'pending' then 0 when 'unknown' then 0 when 'retry' then 0
        when 'sent' then 1 when 'delivered' then 2 when 'read' then 3 when 'failed' then 4
        else 0 end
$$;

create or replace function alphadome.act_for_tenant(p_tenant_id uuid) returns void
language plpgsql
as $$
declare
    v_current uuid := nullif(pg_catalog.current_setting('alphadome.tenant_id', true), '')::uuid;
    v_brand uuid;
begin
    if p_tenant_id is null then
        raise exception 'act_for_tenant: tenant id is required';
    end if;
    if v_current is not null and v_current <> p_tenant_id then
        raise exception 'act_for_tenant: this transaction already acts for another tenant';
    end if;
    if v_current is null then
        perform pg_catalog.set_config('alphadome.tenant_id', p_tenant_id::text, true);
        select t.brand_id into v_brand from alphadome.bot_tenants t where t.id = p_tenant_id;
        perform pg_catalog.set_config('alphadome.brand_id', coalesce(v_brand::text, ''), true);
    end if;
    set local role alphadome_app;
end
$$;

create or replace function alphadome.begin_inbound(p jsonb) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_tenant uuid := (p ->> 'tenant_id')::uuid;
    v_brand uuid;
    v_user uuid;
    v_first boolean := false;
    v_paused timestamptz;
    v_conv uuid;
    v_was_sub boolean;
    v_count integer;
    v_history jsonb := '[]'::jsonb;
    v_lease interval := coalesce((p ->> 'lease_seconds')::integer, 120) * interval '1 second';
begin
    perform alphadome.act_for_tenant(v_tenant);
    v_brand := alphadome.current_tenant_brand_id();
    if v_brand is null then
        raise exception 'begin_inbound: no such tenant';
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

    -- The claim: a new message, a message whose earlier attempt gave it back ('retry'), or one
    -- whose worker died holding it longer than the lease. Anything else is a duplicate.
    insert into public.conversations as c
        (brand_id, bot_tenant_id, user_id, direction, message_text, wa_message_id, message_type,
         status, status_updated_at)
    values (v_brand, v_tenant, v_user, 'incoming', p ->> 'text', p ->> 'wa_message_id',
            p ->> 'message_type', 'processing', now())
    on conflict (wa_message_id) do update
        set status = 'processing', status_updated_at = now()
        where c.status = 'retry' or (c.status = 'processing' and c.status_updated_at < now() - v_lease)
    returning c.id into v_conv;
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

    -- The hourly counter, atomic under any concurrency: only messages that may get a reply
    -- count, and the responder compares the number with the tenant's cap.
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
            limit coalesce((p ->> 'history_turns')::integer, 6)
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


create or replace function alphadome.record_replies(p jsonb) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_tenant uuid := (p ->> 'tenant_id')::uuid;
    v_brand uuid;
    v_inbound text := p ->> 'wa_message_id';
    v_user uuid := (p ->> 'user_id')::uuid;
    v_reply jsonb;
    v_id uuid;
    v_status text;
    v_send boolean;
    v_out jsonb := '[]'::jsonb;
begin
    perform alphadome.act_for_tenant(v_tenant);
    v_brand := alphadome.current_tenant_brand_id();

    update public.conversations c
       set status = p ->> 'inbound_status',
           note = p ->> 'note',
           reply_source = p ->> 'reply_source',
           matched_entry_id = (p ->> 'matched_entry_id')::uuid,
           ai_prompt_tokens = (p ->> 'ai_prompt_tokens')::integer,
           ai_completion_tokens = (p ->> 'ai_completion_tokens')::integer,
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
    return jsonb_build_object('replies', v_out);
end
$$;

