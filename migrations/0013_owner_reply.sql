-- An owner replies as a person from the dashboard (issue 12).
--
-- Owners only read conversations and customers (0010), so the two writes of a person's reply
-- run on the server's own path, acting for the tenant the owner's read (as `authenticated`,
-- under RLS) proved is theirs: the dashboard looks the customer up as the owner first, then
-- opens a tenant transaction (`alphadome_app` + act_for_tenant) and calls these functions.
-- They take no tenant id: they act for the tenant of the transaction, and the policies of
-- `alphadome_app` (0010) keep every row they touch inside it.

-- How long "until resumed" is: far enough to mean never, near enough that the responder's
-- timestamp parsing (chrono) and JSON stay ordinary (`infinity` would not).
create or replace function alphadome.person_pause_interval() returns interval
language sql immutable
as $$
    select interval '100 years'
$$;

-- Records an owner's reply before it is sent, and pauses the assistant for that customer.
-- In: user_id (the customer), text. Out: {id} of the outgoing row (status 'pending'; the send's
-- result is recorded with mark_sent_batch like every other reply), or {id: null} when the
-- customer is not one of this tenant's.
create or replace function alphadome.record_person_reply(p jsonb) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_tenant uuid := alphadome.current_tenant_id();
    v_brand uuid := alphadome.current_tenant_brand_id();
    v_user uuid;
    v_id uuid;
begin
    if v_tenant is null or v_brand is null then
        raise exception 'record_person_reply: act_for_tenant first';
    end if;
    update public.users u
       set bot_paused_until = now() + alphadome.person_pause_interval()
     where u.id = (p ->> 'user_id')::uuid and u.bot_tenant_id = v_tenant
    returning u.id into v_user;
    if v_user is null then
        return jsonb_build_object('id', null);
    end if;
    insert into public.conversations
        (brand_id, bot_tenant_id, user_id, direction, message_text, message_type, status,
         status_updated_at, reply_source)
    values (v_brand, v_tenant, v_user, 'outgoing', p ->> 'text', 'text', 'pending', now(),
            'person')
    returning id into v_id;
    perform alphadome.count_usage(jsonb_build_object('reply:person', 1, 'messages_out', 1));
    return jsonb_build_object('id', v_id);
end
$$;

-- Resumes the assistant for one customer of this transaction's tenant.
-- In: user_id. Out: {resumed}: whether the customer is this tenant's.
create or replace function alphadome.resume_assistant_for(p jsonb) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_tenant uuid := alphadome.current_tenant_id();
    v_user uuid;
begin
    if v_tenant is null then
        raise exception 'resume_assistant_for: act_for_tenant first';
    end if;
    update public.users u
       set bot_paused_until = null
     where u.id = (p ->> 'user_id')::uuid and u.bot_tenant_id = v_tenant
    returning u.id into v_user;
    return jsonb_build_object('resumed', v_user is not null);
end
$$;

revoke all on function alphadome.record_person_reply(jsonb), alphadome.resume_assistant_for(jsonb)
    from public;
grant execute on function alphadome.record_person_reply(jsonb), alphadome.resume_assistant_for(jsonb),
    alphadome.person_pause_interval()
    to alphadome_app;

-- The conversations page lists customers by their latest message: the newest row of each
-- customer, found through this index instead of a scan of the tenant's history.
create index if not exists conversations_user_created_idx
    on public.conversations (user_id, created_at desc);
