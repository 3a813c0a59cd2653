-- A leaner Lambda path (issue 15's throughput): one durable commit per message, one usage
-- write per message, and helpers planned once per session. Measured with `cargo bench -p alphadome --bench
-- lambda_path` (see the README).
--
-- 1. Only the step that must be on disk before the reply leaves waits for the WAL flush.
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

-- 2. The usage row is written once per message, not twice. Each message's claim added
-- `received` to the tenant's daily row: a row every claim of the business updates, so
-- concurrent claims queued on its lock (Lock:transactionid), and a write the record step
-- repeats for its own counts moments later. `received` is now counted by the record step, at
-- the message's first outcome (answered, silent or handed over: the moment handovers and cap
-- hits were already counted), in the one upsert the record makes. A claim writes usage only
-- for an opt-out. A message that never gets an outcome (given back until it reaches the
-- dead-letter queue) is no longer counted as received; the DLQ's depth counts it.

-- 0012's claim_inbound without the `received` counts, and its transaction committing without
-- waiting for the flush (1 above; a setting of the transaction, so it outlasts the call).
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

-- 0019's record_outcome, counting `received` at the first outcome.
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

-- 3. 0015's and 0023's small SQL helpers in PL/pgSQL: a SQL function with a `set` clause is not
-- inlined, so its query was parsed and planned at every call (three times per message); a
-- PL/pgSQL function keeps its plan for the session.
create or replace function alphadome.begin_usage_batch() returns void
language plpgsql
volatile
set search_path = ''
as $$
begin
    perform pg_catalog.set_config('alphadome.usage_batch', 'on', true),
            pg_catalog.set_config('alphadome.usage_pending', '', true);
end
$$;

create or replace function alphadome.status_lock(p_wa_message_id text) returns void
language plpgsql
volatile
set search_path = ''
as $$
begin
    perform pg_catalog.pg_advisory_xact_lock(1634887525, pg_catalog.hashtext(p_wa_message_id));
end
$$;
