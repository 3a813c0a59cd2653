-- Jobs that fail for good, and jobs that give their claim back.
--
-- A job error is either transient (the queue redelivers it) or permanent: the tenant's
-- configuration is wrong (no WhatsApp token, a secret no data key opens) or the database
-- refuses the message itself. Permanent failures are recorded, not redelivered into a
-- dead-letter queue nobody reads: the message's row says `failed` with a reason, and a
-- configuration problem flags the tenant so `alphadome tenant show` / `tenant list` say
-- what the operator must do.

-- What the operator must fix about this tenant, and since when (NULL: nothing).
alter table alphadome.bot_tenants add column if not exists attention text;
alter table alphadome.bot_tenants add column if not exists attention_at timestamptz;

-- Replacing a secret or re-sealing under a new key version clears the flag: the next
-- message tells whether the fix worked.
create or replace function alphadome.clear_attention() returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if new.whatsapp_access_token is distinct from old.whatsapp_access_token
       or new.ai_api_key is distinct from old.ai_api_key
       or new.key_version is distinct from old.key_version then
        new.attention := null;
        new.attention_at := null;
    end if;
    return new;
end
$$;
drop trigger if exists clear_attention on alphadome.bot_tenants;
create trigger clear_attention before update on alphadome.bot_tenants
    for each row execute function alphadome.clear_attention();

-- Flags the tenant the transaction acts for. In: {tenant_id, problem}.
create or replace function alphadome.flag_tenant(p jsonb) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
begin
    perform alphadome.act_for_tenant((p ->> 'tenant_id')::uuid);
    update alphadome.bot_tenants t
       set attention = p ->> 'problem', attention_at = now()
     where t.id = alphadome.current_tenant_id()
       and t.attention is distinct from p ->> 'problem';
    return jsonb_build_object('flagged', true);
end
$$;

-- Gives claimed inbound messages back (status `retry`), so the next attempt claims them at
-- once instead of waiting out the lease: after a panic, or a step the database refused.
-- In: {tenant_id, wa_message_ids: [...]}. Only the tenant's own `processing` rows move.
create or replace function alphadome.release_inbound_batch(p jsonb) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_n integer;
begin
    perform alphadome.act_for_tenant((p ->> 'tenant_id')::uuid);
    update public.conversations c
       set status = 'retry', status_updated_at = now()
     where c.bot_tenant_id = alphadome.current_tenant_id()
       and c.direction = 'incoming'
       and c.status = 'processing'
       and c.wa_message_id in (select jsonb_array_elements_text(coalesce(p -> 'wa_message_ids', '[]'::jsonb)));
    get diagnostics v_n = row_count;
    return jsonb_build_object('released', v_n);
end
$$;

-- Whether any active tenant has its own Meta app secret. The webhook asks (once per cache
-- TTL) before trying tenants' secrets on a delivery the platform's app did not sign: with
-- none, such a delivery is refused without looking up a single number. Crosses tenants, so
-- SECURITY DEFINER with a pinned search_path, and it returns one boolean.
create or replace function alphadome.any_tenant_app_secret() returns boolean
language sql
stable
security definer
set search_path = ''
as $$
    select exists (
        select 1 from alphadome.bot_tenants t
        where t.meta_app_secret is not null and t.is_active
    )
$$;

revoke all on function alphadome.flag_tenant(jsonb), alphadome.release_inbound_batch(jsonb),
    alphadome.any_tenant_app_secret(), alphadome.clear_attention() from public;
grant execute on function alphadome.flag_tenant(jsonb), alphadome.release_inbound_batch(jsonb),
    alphadome.any_tenant_app_secret() to alphadome_app;
grant execute on function alphadome.any_tenant_app_secret() to service_role;
-- The functions' role writes the flag (column privilege, in case table-wide update is
-- narrowed for it).
grant update (attention, attention_at) on alphadome.bot_tenants to alphadome_app;
