-- Delivery statuses written by the webhook itself (issue 16): one round trip per delivery
-- instead of a queue job and a responder invocation per status (Meta sends about three per
-- reply: sent, delivered, read).
--
-- A status can arrive before its message's wamid is recorded: Graph answers the send, Meta
-- calls the webhook with `sent`, and the responder's `mark_sent_batch` may not have
-- committed yet. Such a status is kept in `alphadome.pending_statuses` and applied by a
-- trigger the moment an outgoing row of the same tenant gets that wamid. Both sides take the
-- same transaction-scoped advisory lock on the wamid before looking at the other's table, so
-- one of them always sees the other's committed row (READ COMMITTED: each statement takes a
-- new snapshot after the lock is granted). Statuses for wamids that never appear (messages
-- sent by other tools on the same number) are dropped after a day.
--
-- Everything stays forward-only (delivery_rank), idempotent (a status applied twice moves
-- nothing and counts nothing twice) and inside one tenant (act_for_tenant, RLS).

create table if not exists alphadome.pending_statuses (
    bot_tenant_id uuid not null references alphadome.bot_tenants (id) on delete cascade,
    wa_message_id text not null check (length(wa_message_id) between 1 and 256),
    status text not null check (status ~ '^[a-z_]{1,32}$'),
    -- The status as received (error and pricing), in apply_status's input form.
    payload jsonb not null,
    received_at timestamptz not null default now(),
    primary key (bot_tenant_id, wa_message_id, status)
);
-- The purge of a tenant's old rows, and every policy (bot_tenant_id leads both indexes).
create index if not exists pending_statuses_tenant_received_idx
    on alphadome.pending_statuses (bot_tenant_id, received_at);

revoke all on alphadome.pending_statuses from anon, authenticated;
grant select, insert, delete on alphadome.pending_statuses to alphadome_app;
-- Owners may see their own (nothing to edit: they are Meta's, not theirs).
grant select on alphadome.pending_statuses to authenticated;

alter table alphadome.pending_statuses enable row level security;
alter table alphadome.pending_statuses force row level security;
drop policy if exists operator_all on alphadome.pending_statuses;
create policy operator_all on alphadome.pending_statuses
    for all to alphadome_operator using (true) with check (true);
drop policy if exists owner_reads_own_rows on alphadome.pending_statuses;
create policy owner_reads_own_rows on alphadome.pending_statuses
    for select to authenticated
    using (bot_tenant_id = any ((select alphadome.jwt_tenant_ids())::uuid[]));
drop policy if exists app_own_tenant on alphadome.pending_statuses;
create policy app_own_tenant on alphadome.pending_statuses
    for all to alphadome_app
    using (bot_tenant_id = (select alphadome.current_tenant_id()))
    with check (bot_tenant_id = (select alphadome.current_tenant_id()));

-- The lock both sides take on a wamid before looking at the other side's table.
create or replace function alphadome.status_lock(p_wa_message_id text) returns void
language sql
volatile
set search_path = ''
as $$
    select pg_catalog.pg_advisory_xact_lock(1634887525,
        pg_catalog.hashtext(p_wa_message_id));
$$;

-- 0012's apply_status for one status of the tenant this transaction acts for, without the
-- lock and without keeping what does not match. Out: {found, updated}.
create or replace function alphadome.apply_status_item(p jsonb) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_id uuid;
    v_old text;
    v_cat text;
    v_moves boolean;
    v_new_cat text := nullif(p ->> 'pricing_category', '');
    v_delta jsonb := '{}'::jsonb;
begin
    if alphadome.current_tenant_id() is null then
        raise exception 'apply_status_item: act_for_tenant first';
    end if;
    select c.id, c.status, c.pricing_category into v_id, v_old, v_cat
    from public.conversations c
    where c.wa_message_id = p ->> 'wa_message_id' and c.direction = 'outgoing'
    for update;
    if v_id is null then
        return jsonb_build_object('found', false, 'updated', 0);
    end if;
    v_moves := alphadome.delivery_rank(v_old) < alphadome.delivery_rank(p ->> 'status');
    if not v_moves and (v_cat is not null or v_new_cat is null) then
        return jsonb_build_object('found', true, 'updated', 0);
    end if;
    update public.conversations c
       set status = case when v_moves then p ->> 'status' else c.status end,
           error_code = case when v_moves then coalesce((p ->> 'error_code')::integer, c.error_code)
                             else c.error_code end,
           error_title = case when v_moves then coalesce(p ->> 'error_title', c.error_title)
                              else c.error_title end,
           pricing_category = coalesce(c.pricing_category, v_new_cat),
           pricing_billable = coalesce(c.pricing_billable, (p ->> 'pricing_billable')::boolean),
           pricing_type = coalesce(c.pricing_type, p ->> 'pricing_type'),
           status_updated_at = case when v_moves then now() else c.status_updated_at end
     where c.id = v_id;
    if v_cat is null and v_new_cat is not null then
        v_delta := jsonb_build_object('outbound:' || v_new_cat, 1);
        if coalesce((p ->> 'pricing_billable')::boolean, false) then
            v_delta := v_delta || jsonb_build_object('billable:' || v_new_cat, 1);
        end if;
    end if;
    if v_moves and p ->> 'status' = 'failed' and v_old is distinct from 'failed' then
        v_delta := v_delta || jsonb_build_object('failed_sends', 1,
            'failed:' || coalesce(p ->> 'error_code', 'none'), 1);
    end if;
    perform alphadome.count_usage(v_delta);
    return jsonb_build_object('found', true, 'updated', case when v_moves then 1 else 0 end);
end
$$;

-- One status, under the wamid's lock: applied to its outgoing row, or kept until the row has
-- that wamid. Out: {updated, pending}.
create or replace function alphadome.apply_or_keep_status(p jsonb) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_tenant uuid := alphadome.current_tenant_id();
    v_out jsonb;
begin
    if v_tenant is null then
        raise exception 'apply_or_keep_status: act_for_tenant first';
    end if;
    perform alphadome.status_lock(p ->> 'wa_message_id');
    v_out := alphadome.apply_status_item(p);
    if (v_out ->> 'found')::boolean then
        return jsonb_build_object('updated', (v_out ->> 'updated')::integer, 'pending', false);
    end if;
    insert into alphadome.pending_statuses (bot_tenant_id, wa_message_id, status, payload)
    values (v_tenant, p ->> 'wa_message_id', p ->> 'status', p - 'tenant_id')
    on conflict (bot_tenant_id, wa_message_id, status) do nothing;
    if found then
        -- Statuses of messages this platform never sent would otherwise stay for good.
        delete from alphadome.pending_statuses s
         where s.bot_tenant_id = v_tenant and s.received_at < now() - interval '1 day';
    end if;
    return jsonb_build_object('updated', 0, 'pending', true);
end
$$;

-- The webhook's call: every status of one tenant in a delivery, one round trip.
-- In: tenant_id, items [{wa_message_id, status, error_code, error_title, pricing_category,
--     pricing_billable, pricing_type}]. Out: {results: [{updated, pending}, ...]} in order.
-- Locks are taken in wamid order; a lock still held after lock_timeout fails the call (the
-- webhook answers 500 and Meta delivers again) rather than waiting on a responder that
-- might in turn wait on it.
create or replace function alphadome.apply_statuses(p jsonb) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_item record;
    v_out jsonb[];
    v_n integer := pg_catalog.jsonb_array_length(coalesce(p -> 'items', '[]'::jsonb));
begin
    perform alphadome.act_for_tenant((p ->> 'tenant_id')::uuid);
    perform pg_catalog.set_config('lock_timeout', '500ms', true);
    perform alphadome.begin_usage_batch();
    v_out := pg_catalog.array_fill(null::jsonb, array[v_n]);
    for v_item in
        select e.value, e.ordinality as i
          from pg_catalog.jsonb_array_elements(coalesce(p -> 'items', '[]'::jsonb))
               with ordinality e
         order by e.value ->> 'wa_message_id', e.ordinality
    loop
        v_out[v_item.i::integer] := alphadome.apply_or_keep_status(v_item.value);
    end loop;
    perform alphadome.flush_usage();
    return jsonb_build_object('results', coalesce(to_jsonb(v_out), '[]'::jsonb));
end
$$;

-- 0012's apply_status (the responder's status jobs, still read while old jobs drain from the
-- queue): the same, and a status that matches nothing yet is kept as well.
create or replace function alphadome.apply_status(p jsonb) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_out jsonb;
begin
    perform alphadome.act_for_tenant((p ->> 'tenant_id')::uuid);
    v_out := alphadome.apply_or_keep_status(p);
    return jsonb_build_object('updated', (v_out ->> 'updated')::integer);
end
$$;

-- An outgoing row got its wamid: apply the statuses that came first, in rank order, and
-- forget them. Only inside a transaction that acts for the row's tenant (the pipeline's and
-- the dashboard's writes); anything else leaves them for their day.
create or replace function alphadome.apply_pending_statuses() returns trigger
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_payload jsonb;
begin
    if new.bot_tenant_id is null
       or alphadome.current_tenant_id() is distinct from new.bot_tenant_id then
        return null;
    end if;
    perform alphadome.status_lock(new.wa_message_id);
    for v_payload in
        select s.payload from alphadome.pending_statuses s
         where s.bot_tenant_id = new.bot_tenant_id and s.wa_message_id = new.wa_message_id
         order by alphadome.delivery_rank(s.status)
    loop
        perform alphadome.apply_status_item(v_payload);
    end loop;
    if found then
        delete from alphadome.pending_statuses s
         where s.bot_tenant_id = new.bot_tenant_id and s.wa_message_id = new.wa_message_id;
    end if;
    return null;
end
$$;

drop trigger if exists conversations_pending_statuses_insert on public.conversations;
create trigger conversations_pending_statuses_insert
    after insert on public.conversations
    for each row
    when (new.direction = 'outgoing' and new.wa_message_id is not null)
    execute function alphadome.apply_pending_statuses();
drop trigger if exists conversations_pending_statuses_update on public.conversations;
create trigger conversations_pending_statuses_update
    after update of wa_message_id on public.conversations
    for each row
    when (new.direction = 'outgoing' and new.wa_message_id is not null
          and old.wa_message_id is distinct from new.wa_message_id)
    execute function alphadome.apply_pending_statuses();

revoke all on function alphadome.status_lock(text), alphadome.apply_status_item(jsonb),
    alphadome.apply_or_keep_status(jsonb), alphadome.apply_statuses(jsonb),
    alphadome.apply_pending_statuses() from public;
grant execute on function alphadome.status_lock(text), alphadome.apply_status_item(jsonb),
    alphadome.apply_or_keep_status(jsonb), alphadome.apply_statuses(jsonb),
    alphadome.apply_pending_statuses() to alphadome_app;
