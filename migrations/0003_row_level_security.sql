-- Row-level security: no business can see another's rows, whoever asks.
--
-- Two kinds of callers:
--   * Admins in Supabase (role `authenticated`): they see only the rows of the brand in their
--     JWT. The brand comes from `app_metadata.brand_id` (set by the server, not editable by the
--     user) or from a top-level `brand_id` claim put there by a custom access-token hook. Never
--     from `user_metadata`, which users can edit themselves.
--   * Our functions (role `alphadome_app`, no BYPASSRLS): they act for exactly one tenant per
--     transaction. `alphadome.act_for_tenant(id)` switches to the role with `set local role`
--     and records the tenant with `set_config(..., true)`; both end with the transaction, so a
--     pooled connection never carries a tenant over to the next user. Even a bug in our Rust
--     code that forgot a `where` can then read only that tenant's rows.
--
-- Policies wrap `auth.jwt()` and `current_setting` in `(select ...)` so PostgreSQL evaluates
-- them once per statement (an InitPlan), not once per row. Every column a policy filters on
-- is indexed (see 0002).

do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'alphadome_app') then
        create role alphadome_app nologin noinherit nobypassrls;
    end if;
exception when duplicate_object or unique_violation then
    null; -- created concurrently by another database's migration
end
$$;
-- The migrating user (the one our functions connect as) may become alphadome_app.
do $$
begin
    execute format('grant alphadome_app to %I', current_user);
exception when others then
    -- Already a member, or a superuser: nothing to grant.
    null;
end
$$;

-- The brand of the signed-in admin, or NULL.
create or replace function alphadome.jwt_brand_id() returns uuid
language sql stable
set search_path = ''
as $$
    select nullif(
        coalesce(
            (select auth.jwt()) -> 'app_metadata' ->> 'brand_id',
            (select auth.jwt()) ->> 'brand_id'
        ),
        ''
    )::uuid
$$;

-- The tenant our functions act for in this transaction, or NULL.
create or replace function alphadome.current_tenant_id() returns uuid
language sql stable
set search_path = ''
as $$
    select nullif(current_setting('alphadome.tenant_id', true), '')::uuid
$$;

-- Act for one tenant until the end of the transaction. Refuses to switch to another tenant
-- within the same transaction: one transaction, one tenant.
create or replace function alphadome.act_for_tenant(p_tenant_id uuid) returns void
language plpgsql
set search_path = ''
as $$
declare
    v_current uuid := nullif(current_setting('alphadome.tenant_id', true), '')::uuid;
begin
    if p_tenant_id is null then
        raise exception 'act_for_tenant: tenant id is required';
    end if;
    if v_current is not null and v_current <> p_tenant_id then
        raise exception 'act_for_tenant: this transaction already acts for another tenant';
    end if;
    perform set_config('alphadome.tenant_id', p_tenant_id::text, true);
    set local role alphadome_app;
end
$$;

-- The one lookup that crosses tenants: which tenant owns the number that received a message.
-- SECURITY DEFINER with a pinned search_path, and it returns only what routing needs.
create or replace function alphadome.resolve_tenant(p_phone_number_id text)
returns table (
    bot_tenant_id uuid,
    brand_id uuid,
    is_active boolean,
    meta_app_secret text,
    key_version integer
)
language sql stable
security definer
set search_path = ''
as $$
    select t.id, t.brand_id, t.is_active, t.meta_app_secret, t.key_version
    from alphadome.bot_tenants t
    where t.whatsapp_phone_number_id = p_phone_number_id
$$;
revoke all on function alphadome.resolve_tenant(text) from public;
grant execute on function alphadome.resolve_tenant(text) to alphadome_app, service_role;

grant usage on schema alphadome to alphadome_app, authenticated, service_role;
grant select, insert, update, delete on all tables in schema alphadome to authenticated, service_role;
grant select, update on alphadome.bot_tenants to alphadome_app;
-- Templates, knowledge and settings are written by the operator's CLI, which acts for one
-- tenant like the functions do; the policies keep every write inside that tenant.
grant select, insert, update, delete on alphadome.bot_templates, alphadome.bot_training_data
    to alphadome_app;
grant select, update on alphadome.bot_control_settings to alphadome_app;
grant select, insert, update on alphadome.bot_usage_counters to alphadome_app;
grant select, insert, update on public.conversations, public.users, public.subscriptions
    to alphadome_app;
grant select, insert, update, delete on public.conversations, public.users, public.subscriptions
    to authenticated, service_role;

---------------------------------------------------------------------------------------------
-- Turn RLS on. The tables' owner (the operator's migrating user) is not subject to it; our
-- functions never query as the owner: they act through alphadome_app.
alter table alphadome.bot_tenants enable row level security;
alter table alphadome.bot_templates enable row level security;
alter table alphadome.bot_training_data enable row level security;
alter table alphadome.bot_control_settings enable row level security;
alter table alphadome.bot_usage_counters enable row level security;
alter table public.conversations enable row level security;
alter table public.users enable row level security;
alter table public.subscriptions enable row level security;

-- Policies are dropped and created again so that this migration describes them in full.
-- bot_tenants -------------------------------------------------------------------------------
drop policy if exists admin_own_brand on alphadome.bot_tenants;
create policy admin_own_brand on alphadome.bot_tenants
    for all to authenticated
    using (brand_id = (select alphadome.jwt_brand_id()))
    with check (brand_id = (select alphadome.jwt_brand_id()));
drop policy if exists app_own_tenant on alphadome.bot_tenants;
create policy app_own_tenant on alphadome.bot_tenants
    for all to alphadome_app
    using (id = (select alphadome.current_tenant_id()))
    with check (id = (select alphadome.current_tenant_id()));

-- Tables that belong to a tenant through bot_tenant_id -------------------------------------
do $$
declare
    t text;
begin
    foreach t in array array[
        'alphadome.bot_templates',
        'alphadome.bot_training_data',
        'alphadome.bot_control_settings',
        'alphadome.bot_usage_counters'
    ] loop
        execute format('drop policy if exists admin_own_brand on %s', t);
        execute format($p$
            create policy admin_own_brand on %s
                for all to authenticated
                using (bot_tenant_id in (
                    select bt.id from alphadome.bot_tenants bt
                    where bt.brand_id = (select alphadome.jwt_brand_id())))
                with check (bot_tenant_id in (
                    select bt.id from alphadome.bot_tenants bt
                    where bt.brand_id = (select alphadome.jwt_brand_id())))
        $p$, t);
        execute format('drop policy if exists app_own_tenant on %s', t);
        execute format($p$
            create policy app_own_tenant on %s
                for all to alphadome_app
                using (bot_tenant_id = (select alphadome.current_tenant_id()))
                with check (bot_tenant_id = (select alphadome.current_tenant_id()))
        $p$, t);
    end loop;
end
$$;

-- The brand of the tenant our functions act for (used so a row cannot be logged under
-- another brand even by a bug that passes the wrong brand id).
create or replace function alphadome.current_tenant_brand_id() returns uuid
language sql stable
set search_path = ''
as $$
    select t.brand_id from alphadome.bot_tenants t
    where t.id = (select alphadome.current_tenant_id())
$$;

-- Tables tagged with brand_id and bot_tenant_id --------------------------------------------
do $$
declare
    t text;
begin
    foreach t in array array['public.conversations', 'public.users', 'public.subscriptions'] loop
        execute format('drop policy if exists admin_own_brand on %s', t);
        execute format($p$
            create policy admin_own_brand on %s
                for all to authenticated
                using (brand_id = (select alphadome.jwt_brand_id()))
                with check (brand_id = (select alphadome.jwt_brand_id()))
        $p$, t);
        execute format('drop policy if exists app_own_tenant on %s', t);
        execute format($p$
            create policy app_own_tenant on %s
                for all to alphadome_app
                using (bot_tenant_id = (select alphadome.current_tenant_id()))
                with check (bot_tenant_id = (select alphadome.current_tenant_id())
                            and brand_id = (select alphadome.current_tenant_brand_id()))
        $p$, t);
    end loop;
end
$$;
