-- Voice notes and pictures (issue 14): a voice note's transcript is logged as the incoming
-- message's text, marked as a transcript; the audio itself is never stored.
--
-- `public.conversations.is_transcript`: true when `message_text` of an incoming message is the
-- speech-to-text model's transcript of a voice note, not what the customer typed. The
-- dashboard and the AI's history read it like any text; the mark says whose words they are.
alter table public.conversations
    add column if not exists is_transcript boolean not null default false;

-- 0012's record_outcome, with two additions and nothing else changed:
--   * optional input key `transcript`: written as the incoming message's text, marked;
--   * usage counts of the media path, added to the tenant's day like the AI's:
--       transcriptions               voice notes sent to the speech-to-text model
--       transcription_seconds        audio seconds, when the server reports them
--       transcription_input_tokens   / transcription_output_tokens, when it reports tokens
--       image_inputs                 pictures shown to the chat model
--     (zeros are not written: count_usage leaves them out).
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
