-- Replies a failed record call left `pending` are given back when nothing was sent.
--
-- The record of a message's replies (`pending`) is the one durable step before the send, and a
-- `pending` reply is never sent again: it may have reached the customer. But when the record
-- call's answer is lost after its commit (the connection drops, PostgreSQL restarts), the
-- responder knows it sent nothing: it treats the call as failed and the message is redelivered.
-- The redelivery found the message `answered` and its replies `pending`, so the customer got
-- no answer at all. Now the responder gives such replies back as `retry`, with their message,
-- and the redelivery claims it and sends them, once.
--
-- Only replies the failed call itself made sendable are given back: each record call carries
-- a fresh `attempt` id, stamped on the replies it inserts or takes back from `retry`. A reply
-- an earlier attempt made `pending` (by a worker that outlived its lease, whose send may have
-- gone out) carries another id and stays `pending`.

alter table public.conversations add column if not exists send_attempt uuid;
comment on column public.conversations.send_attempt is
    'Outgoing rows: the record call that made the reply sendable (pending); see give_back_unsent.';

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
                 ai_prompt_tokens, ai_completion_tokens, send_attempt)
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
                   send_attempt = (p ->> 'attempt')::uuid
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


-- Gives back what the record call `attempt` left unsent for these messages, when its answer
-- was lost and nothing was sent: the replies it made `pending` become `retry`, and so do their
-- messages; a message still `processing` (the record did not commit) is released as `retry`,
-- as release_inbound_batch does. In: tenant_id, attempt, wa_message_ids.
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
           and c.status = 'pending' and c.send_attempt = v_attempt
        returning c.in_reply_to
    )
    select array(select distinct g.in_reply_to from given g) into v_answered;
    update public.conversations c
       set status = 'retry', status_updated_at = now()
     where c.direction = 'incoming' and c.wa_message_id = any (v_ids)
       and (c.status = 'processing' or c.wa_message_id = any (v_answered));
    get diagnostics v_messages = row_count;
    return jsonb_build_object('replies', coalesce(pg_catalog.cardinality(v_answered), 0),
                              'messages', v_messages);
end
$$;
revoke all on function alphadome.give_back_unsent(jsonb) from public;
grant execute on function alphadome.give_back_unsent(jsonb) to alphadome_app;
