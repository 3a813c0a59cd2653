-- Claim and record in one call when the answer does not depend on the claim.
--
-- Most messages are answered from the business's FAQ, and that answer depends on the claim
-- only through a few facts: the customer is subscribed, not paused, within the hourly cap,
-- and not on a first contact that earns a welcome. The responder now decides such a message
-- before claiming it, on those facts assumed, and sends the outcome with the claim
-- (`foreseen`: the record's input and the hourly cap). claim_inbound records it in the same
-- transaction when the facts it found are the assumed ones, and returns the recorded replies
-- (`recorded`); otherwise the responder decides on the facts found and records as before.
-- One call per message less, and the claim's answer is the record's. A message claimed for
-- the first time is written answered at once, so its row is written once, not twice.
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
    v_cap integer := (p -> 'foreseen' ->> 'cap')::integer;
    v_record jsonb := p -> 'foreseen' -> 'record';
    v_foreseen boolean;
    v_written boolean := false;
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

    if v_user is not null then
        select s.is_subscribed into v_was_sub
        from public.subscriptions s
        where s.bot_tenant_id = v_tenant and s.user_id = v_user;
    end if;
    v_was_sub := coalesce(v_was_sub, true);

    -- The outcome the responder foresaw holds when the facts it assumed do: a subscribed
    -- customer, not paused, not a first contact unless that changes nothing (no welcome
    -- message), and within the hourly cap (counted below). A new message is then written
    -- answered at once (one write of its row, not two).
    v_foreseen := v_record is not null and p ->> 'intent' is null and v_was_sub
        and (v_paused is null or v_paused <= now())
        and (not v_first or coalesce((p -> 'foreseen' ->> 'first_contact_too')::boolean, false));

    insert into public.conversations as c
        (brand_id, bot_tenant_id, user_id, direction, message_text, wa_message_id, message_type,
         status, status_updated_at, attempt, note, reply_source, matched_entry_id)
    values (v_brand, v_tenant, v_user, 'incoming', p ->> 'text', p ->> 'wa_message_id',
            p ->> 'message_type',
            case when v_foreseen then v_record ->> 'inbound_status' else 'processing' end,
            now(), (p ->> 'attempt')::uuid,
            case when v_foreseen then v_record ->> 'note' end,
            case when v_foreseen then v_record ->> 'reply_source' end,
            case when v_foreseen then (v_record ->> 'matched_entry_id')::uuid end)
    on conflict (wa_message_id) do update
        set status = 'processing', status_updated_at = now(), attempt = excluded.attempt
        where c.status = 'retry' or (c.status = 'processing' and c.status_updated_at < now() - p_lease)
    returning c.id, (c.xmax = 0), c.reply_source into v_conv, v_new, v_prior_source;
    if v_conv is null then
        return jsonb_build_object('claimed', false);
    end if;
    v_written := v_new and v_foreseen;
    if v_new then
        v_prior_source := null;
    end if;
    if v_prior_source = 'escalation' then
        -- Handed back after its hand-over was recorded and never sent: the pause is this
        -- message's own, and the hand-over still has to reach the customer and the owner.
        v_paused := null;
    end if;

    if v_user is not null and p ->> 'intent' in ('stop', 'start') then
        insert into public.subscriptions as s (bot_tenant_id, brand_id, user_id, is_subscribed, updated_at)
        values (v_tenant, v_brand, v_user, p ->> 'intent' = 'start', now())
        on conflict (bot_tenant_id, user_id) where bot_tenant_id is not null
        do update set is_subscribed = excluded.is_subscribed, updated_at = now();
    end if;
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

    -- The foreseen outcome, recorded now when the cap holds too.
    if v_foreseen and v_count is not null and v_count <= v_cap then
        v_recorded := alphadome.record_outcome(v_record || jsonb_build_object(
            'wa_message_id', p ->> 'wa_message_id',
            'attempt', p ->> 'attempt',
            'user_id', v_user,
            'message_type', p ->> 'message_type',
            'incoming_written', v_written)) -> 'replies';
    elsif v_written then
        -- Over the hourly cap after all: the message goes back to claimed, undecided.
        update public.conversations c
           set status = 'processing', note = null, reply_source = null, matched_entry_id = null
         where c.id = v_conv;
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

-- 0026's record_outcome: the incoming row's write is skipped when the claim wrote it with its
-- outcome (`incoming_written`), and only non-zero counts go to count_usage.
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

    if coalesce((p ->> 'incoming_written')::boolean, false) then
        -- Written with its outcome by the claim that created it (claim_inbound).
        v_first_outcome := true;
        v_type := p ->> 'message_type';
    else
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
    end if;

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
    -- Only the counts there are (count_usage skips zeros, but walks every key it is given).
    v_delta := v_delta || pg_catalog.jsonb_strip_nulls(jsonb_build_object(
        'ai_calls', nullif((p ->> 'ai_calls')::integer, 0),
        'ai_prompt_tokens', nullif((p ->> 'ai_prompt_tokens')::bigint, 0),
        'ai_completion_tokens', nullif((p ->> 'ai_completion_tokens')::bigint, 0),
        'ai_cached_tokens', nullif((p ->> 'ai_cached_tokens')::bigint, 0),
        'transcriptions', nullif((p ->> 'transcriptions')::integer, 0),
        'transcription_seconds', nullif((p ->> 'transcription_seconds')::bigint, 0),
        'transcription_input_tokens', nullif((p ->> 'transcription_input_tokens')::bigint, 0),
        'transcription_output_tokens', nullif((p ->> 'transcription_output_tokens')::bigint, 0),
        'image_inputs', nullif((p ->> 'image_inputs')::integer, 0)));
    if v_delta <> '{}'::jsonb then
        perform alphadome.count_usage(v_delta);
    end if;
    return jsonb_build_object('replies', v_out);
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
        v_recorded := v_recorded or coalesce(pg_catalog.jsonb_typeof(v_one -> 'recorded') = 'array', false);
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
