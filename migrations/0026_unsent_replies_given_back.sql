-- What a call whose answer was lost left undone is given back when nothing was sent.
--
-- The record of a message's replies (`pending`) is the one durable step before the send, and a
-- `pending` reply is never sent again: it may have reached the customer. But when the record
-- call's answer is lost after its commit (the connection drops, PostgreSQL restarts), the
-- responder knows it sent nothing: it treats the call as failed and the message is redelivered.
-- The redelivery found the message `answered` and its replies `pending`, so the customer got
-- no answer at all. Likewise a claim whose answer was lost held the message `processing`
-- until its lease ran out. Now the responder gives back, as `retry`, the claims and the
-- `pending` replies of the attempt whose call failed, and the redelivery answers at once.
--
-- Only what that attempt did is given back: the responder's attempt at some of a tenant's
-- messages carries a fresh id, stamped by the claim on the messages it claims and by the
-- record on the replies it makes sendable. A reply another attempt made `pending` (a worker
-- that outlived its lease, whose send may have gone out) or a claim another worker holds
-- carries another id and is left alone.

alter table public.conversations add column if not exists attempt uuid;
comment on column public.conversations.attempt is
    'The responder''s attempt that last claimed this message (incoming) or made this reply '
    'sendable (outgoing, pending); see give_back_unsent.';

-- 0025's claim_inbound, stamping the claims it makes with the call's `attempt`.
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


-- 0025's record_outcome, stamping the replies it makes sendable with the call's `attempt`.
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
    v_type text;
    v_delta jsonb := '{}'::jsonb;
begin
    if v_tenant is null or v_brand is null then
        raise exception 'record_outcome: act_for_tenant first';
    end if;

    select c.reply_source is null and c.note is null, c.message_type
      into v_first_outcome, v_type
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
           message_text = coalesce(p ->> 'transcript', c.message_text),
           is_transcript = c.is_transcript or (p ->> 'transcript') is not null,
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
                 ai_prompt_tokens, ai_completion_tokens, attempt)
            values (v_brand, v_tenant,
                    case when coalesce((v_reply ->> 'to_customer')::boolean, true) then v_user end,
                    'outgoing', v_reply ->> 'text', 'text', 'pending', now(),
                    v_reply ->> 'source', v_inbound, (p ->> 'matched_entry_id')::uuid,
                    (p ->> 'ai_prompt_tokens')::integer, (p ->> 'ai_completion_tokens')::integer,
                    (p ->> 'attempt')::uuid)
            returning id into v_id;
            v_send := true;
            v_delta := alphadome.add_counts(v_delta, jsonb_build_object(
                'reply:' || (v_reply ->> 'source'), 1, 'messages_out', 1));
        elsif v_status = 'retry' then
            update public.conversations c
               set status = 'pending', message_text = v_reply ->> 'text', status_updated_at = now(),
                   attempt = (p ->> 'attempt')::uuid
             where c.id = v_id;
            v_send := true;
        else
            v_send := false;
        end if;
        v_out := v_out || jsonb_build_array(jsonb_build_object(
            'id', v_id, 'source', v_reply ->> 'source', 'send', v_send));
    end loop;

    if coalesce(v_first_outcome, false) then
        v_delta := v_delta || jsonb_build_object('received', 1,
            'received:' || coalesce(v_type, 'unknown'), 1);
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
        'ai_cached_tokens', coalesce((p ->> 'ai_cached_tokens')::bigint, 0),
        'transcriptions', coalesce((p ->> 'transcriptions')::integer, 0),
        'transcription_seconds', coalesce((p ->> 'transcription_seconds')::bigint, 0),
        'transcription_input_tokens', coalesce((p ->> 'transcription_input_tokens')::bigint, 0),
        'transcription_output_tokens', coalesce((p ->> 'transcription_output_tokens')::bigint, 0),
        'image_inputs', coalesce((p ->> 'image_inputs')::integer, 0));
    perform alphadome.count_usage(v_delta);
    return jsonb_build_object('replies', v_out);
end
$$;


-- Gives back what the attempt `attempt` left undone for these messages, when the answer of
-- one of its calls was lost and nothing was sent: the replies it made `pending` become
-- `retry`, and so do their messages and the messages it claimed but never recorded.
-- In: tenant_id, attempt, wa_message_ids.
-- Out: {replies: messages whose replies were given back, messages: messages given back}.
create or replace function alphadome.give_back_unsent(p jsonb) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_attempt uuid := (p ->> 'attempt')::uuid;
    v_ids text[];
    v_answered text[];
    v_messages integer;
begin
    perform alphadome.act_for_tenant((p ->> 'tenant_id')::uuid);
    if v_attempt is null then
        raise exception 'give_back_unsent: attempt is required';
    end if;
    v_ids := array(select pg_catalog.jsonb_array_elements_text(coalesce(p -> 'wa_message_ids', '[]'::jsonb)));
    with given as (
        update public.conversations c
           set status = 'retry', status_updated_at = now()
         where c.direction = 'outgoing' and c.in_reply_to = any (v_ids)
           and c.status = 'pending' and c.attempt = v_attempt
        returning c.in_reply_to
    )
    select array(select distinct g.in_reply_to from given g) into v_answered;
    update public.conversations c
       set status = 'retry', status_updated_at = now()
     where c.direction = 'incoming' and c.wa_message_id = any (v_ids)
       and ((c.status = 'processing' and c.attempt = v_attempt)
            or c.wa_message_id = any (v_answered));
    get diagnostics v_messages = row_count;
    return jsonb_build_object('replies', coalesce(pg_catalog.cardinality(v_answered), 0),
                              'messages', v_messages);
end
$$;
revoke all on function alphadome.give_back_unsent(jsonb) from public;
grant execute on function alphadome.give_back_unsent(jsonb) to alphadome_app;
