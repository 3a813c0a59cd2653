-- The owners' dashboard's remaining pages (issue 12): hand-overs an owner marks done, and the
-- indexes that keep every page's queries on an index under row-level security for a tenant
-- with tens of thousands of conversations.

---------------------------------------------------------------------------------------------
-- Hand-overs. A conversation waits for a person when the assistant is paused for the customer
-- (an escalation's quiet period, or the owner replied as a person) or when the assistant
-- handed it over (an outgoing `escalation` reply) after the owner last marked it done.
-- Owners only read customers (0010), so "mark done" runs on the server's path that acts for
-- the tenant the owner's read proved is theirs, like resume_assistant_for (0013).
alter table public.users add column if not exists handover_done_at timestamptz;

-- Marks one customer's hand-over done: the pause ends and earlier escalations no longer count.
-- In: user_id. Out: {done}: whether the customer is this transaction's tenant's.
create or replace function alphadome.mark_handover_done(p jsonb) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_tenant uuid := alphadome.current_tenant_id();
    v_user uuid;
begin
    if v_tenant is null then
        raise exception 'mark_handover_done: act_for_tenant first';
    end if;
    update public.users u
       set bot_paused_until = null, handover_done_at = now()
     where u.id = (p ->> 'user_id')::uuid and u.bot_tenant_id = v_tenant
    returning u.id into v_user;
    return jsonb_build_object('done', v_user is not null);
end
$$;
revoke all on function alphadome.mark_handover_done(jsonb) from public;
grant execute on function alphadome.mark_handover_done(jsonb) to alphadome_app;

-- The hand-over notices of a tenant (outgoing, to the owner; `in_reply_to` names the
-- customer's message): the hand-overs page and the overview's count read only these rows,
-- never the tenant's whole history.
create index if not exists conversations_escalation_idx
    on public.conversations (bot_tenant_id, created_at desc)
    where reply_source = 'escalation' and direction = 'outgoing';
-- Customers the assistant is paused for.
create index if not exists users_paused_idx
    on public.users (bot_tenant_id, bot_paused_until)
    where bot_paused_until is not null;

-- Conversations: customers by their latest message to the business, one ordered index scan
-- per number (the page reads 26 customers, not every customer's history). A live database's
-- users table may lack created_at; a customer who never wrote sorts last.
create index if not exists users_tenant_latest_idx
    on public.users (bot_tenant_id,
                     (coalesce(last_inbound_at, timestamptz '1970-01-01 00:00:00+00')) desc,
                     id desc);

---------------------------------------------------------------------------------------------
-- Knowledge: "Unanswered" lists a tenant's newest customer messages the FAQ did not answer
-- (their reply came from the AI, a fallback or a hand-over, or there was none).
create index if not exists conversations_unanswered_idx
    on public.conversations (bot_tenant_id, created_at desc)
    where direction = 'incoming' and message_text is not null
      and (reply_source is null or reply_source in ('ai', 'fallback', 'escalation'));
-- Phrasings of one entry (the knowledge page lists them per entry).
create index if not exists bot_training_phrasings_entry_idx
    on alphadome.bot_training_phrasings (training_data_id);
