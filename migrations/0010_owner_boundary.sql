-- The tenant boundary for business owners (issue 11).
--
-- Until now a signed-in admin (Supabase role `authenticated`, brand in `app_metadata`) had
-- every table privilege and one `for all` policy per table keyed on a brand column it could
-- write itself: it could insert a tenant for any number, move its own tenant to another
-- number, replace its tokens, and plant customers or conversations under another business's
-- tenant. RLS was enabled but forced on no table, and `public.brands` had none.
--
-- After this migration:
--   * owners get privileges by column: they read their own tenants (never the sealed
--     columns), edit display fields, templates, knowledge and bounded control settings, and
--     only read conversations, customers, subscriptions and usage;
--   * every owner policy checks that the row's tenant belongs to the owner's brand, in
--     `using` and in `with check`;
--   * row-level security is enabled and FORCED on every tenant table and on public.brands;
--   * the functions' `with check` on the brand comes from the tenant the transaction acts
--     for (looked up), not from the `alphadome.brand_id` setting any caller can set.
--
-- Runs on a fresh database and on the live Supabase one (tables and policies may pre-exist):
-- every step is idempotent.

---------------------------------------------------------------------------------------------
-- Who still reaches every row once RLS is forced.
--
-- FORCE makes the tables' owner (the migrating user, which the operator's CLI connects as)
-- subject to the policies too, and with it every SECURITY DEFINER function it owns
-- (resolve_tenant, resolve_tenant_by_brand). A superuser or a BYPASSRLS role is exempt even
-- from FORCE, which is why the tests, connected as the superuser `postgres`, would not notice
-- a missing policy. On Supabase the migrating role is not a superuser, and we must not need it
-- to bypass RLS. So the operator's access is an explicit policy, not an exemption:
--
--   alphadome_operator  NOLOGIN, no BYPASSRLS; granted to the migrating user. Policies
--                       `operator_all` give it every row of every forced table. Policies apply
--                       to members of a role through inheritance, so the CLI (connected as the
--                       migrating user) and the definer functions it owns keep working with no
--                       `set role`. The migrating user must therefore keep INHERIT (Supabase's
--                       `postgres` has it).
--
-- Nothing else is a member: not alphadome_app (the functions), not authenticated (owners), not
-- the functions' login role. A role that needs the operator's reach must be granted it
-- explicitly, and that grant is visible in pg_auth_members.
do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'alphadome_operator') then
        create role alphadome_operator nologin noinherit nobypassrls;
    end if;
exception when duplicate_object or unique_violation then
    null; -- created concurrently by another database's migration (roles are cluster-wide)
end
$$;
do $$
begin
    execute format('grant alphadome_operator to %I', current_user);
exception when others then
    -- Already a member, or a superuser (exempt from RLS anyway).
    null;
end
$$;

---------------------------------------------------------------------------------------------
-- Helpers. Plain SQL so the planner can inline them; everything they call is
-- schema-qualified, operators included, so a caller's search_path cannot redirect them.

-- The most replies per hour an owner may set for its own tenant (the operator may set more).
create or replace function alphadome.platform_max_messages_per_hour() returns integer
language sql immutable
as $$
    select 1000
$$;

-- The tenants of the signed-in admin's brand (empty without a brand claim). Runs as the
-- caller, so bot_tenants' own policy applies to the lookup as well.
create or replace function alphadome.jwt_tenant_ids() returns uuid[]
language sql stable
as $$
    select coalesce(pg_catalog.array_agg(bt.id), '{}'::uuid[])
    from alphadome.bot_tenants bt
    where bt.brand_id operator(pg_catalog.=) alphadome.jwt_brand_id()
$$;

-- The brand of the tenant this transaction acts for, looked up from the tenant row, never
-- from a setting. act_for_tenant still records `alphadome.brand_id` for speed (the pipeline
-- tags rows with it), but that setting is only a value to write: a transaction that sets it
-- to another brand writes rows that this check refuses.
create or replace function alphadome.acting_brand_id() returns uuid
language sql stable
as $$
    select t.brand_id
    from alphadome.bot_tenants t
    where t.id operator(pg_catalog.=) alphadome.current_tenant_id()
$$;

-- The hourly cap stored now for a settings row (the statement's snapshot: the value before an
-- update). An owner may keep or lower a cap the operator set above the platform maximum, but
-- never raise it above the larger of the two.
create or replace function alphadome.stored_hourly_cap(p_settings_id uuid) returns integer
language sql stable
as $$
    select s.max_messages_per_hour
    from alphadome.bot_control_settings s
    where s.id operator(pg_catalog.=) p_settings_id
$$;

revoke all on function alphadome.act_for_tenant(uuid) from public;
grant execute on function alphadome.act_for_tenant(uuid) to alphadome_app;
grant execute on function alphadome.platform_max_messages_per_hour(), alphadome.jwt_tenant_ids(),
    alphadome.acting_brand_id(), alphadome.stored_hourly_cap(uuid)
    to alphadome_app, authenticated, service_role;

---------------------------------------------------------------------------------------------
-- Privileges by column. Start from nothing for the Data API's roles (Supabase's default
-- privileges may have granted `all` on public tables to anon and authenticated), then grant
-- exactly what an owner needs. Revoking a table privilege also revokes it on every column.
revoke all on all tables in schema alphadome from anon, authenticated;
revoke all on public.brands, public.conversations, public.users, public.subscriptions
    from anon, authenticated;

-- Tenants: read what the dashboard shows, never the sealed columns (whatsapp_access_token,
-- ai_api_key, meta_app_secret) nor key_version; edit display fields only. Routing
-- (whatsapp_phone_number_id, client_phone), brand_id, the secrets, key_version, is_active,
-- is_verified and needs_token_refresh change only through the operator (or the functions,
-- for needs_token_refresh). No insert, no delete.
grant select (id, client_name, client_phone, point_of_contact_name, brand_id,
              whatsapp_phone_number_id, is_active, is_verified, needs_token_refresh,
              created_at, updated_at)
    on alphadome.bot_tenants to authenticated;
grant update (client_name, point_of_contact_name) on alphadome.bot_tenants to authenticated;

-- Templates. `model` stays with the operator: the model decides what the platform's shared AI
-- key is spent on. bot_tenant_id can be set on insert (policy-checked), never changed.
grant select on alphadome.bot_templates to authenticated;
grant insert (bot_tenant_id, template_name, system_prompt, tone, is_default, is_active)
    on alphadome.bot_templates to authenticated;
grant update (template_name, system_prompt, tone, is_default, is_active)
    on alphadome.bot_templates to authenticated;
grant delete on alphadome.bot_templates to authenticated;

-- Knowledge (FAQ, canned answers, grounding).
grant select on alphadome.bot_training_data to authenticated;
grant insert (bot_tenant_id, data_type, question, answer, category, priority, is_active)
    on alphadome.bot_training_data to authenticated;
grant update (data_type, question, answer, category, priority, is_active)
    on alphadome.bot_training_data to authenticated;
grant delete on alphadome.bot_training_data to authenticated;

-- Control settings: one row per tenant, created by the operator; owners change the switches,
-- the cap within the platform's bound (policy below), never the row's tenant.
grant select on alphadome.bot_control_settings to authenticated;
grant update (is_bot_enabled, max_messages_per_hour, enable_ai_responses, escalation_phone,
              escalation_quiet_minutes, welcome_message, mark_messages_read)
    on alphadome.bot_control_settings to authenticated;

-- Usage, customers, subscriptions and messages: read only. They are written by the
-- functions' paths (acting for one tenant) and the operator, never by an owner.
grant select on alphadome.bot_usage_counters to authenticated;
grant select on public.conversations, public.users, public.subscriptions to authenticated;

-- An owner sees its own brand's name.
grant select (id, name) on public.brands to authenticated;

-- The functions' role (and the operator's commands that act for one tenant) update only what
-- those paths write: activation, the token-refresh flag, the sealed columns and their key
-- version. Routing, the brand and the tenant's identity are the operator's, as table owner.
revoke update on alphadome.bot_tenants from alphadome_app;
grant update (is_active, needs_token_refresh, whatsapp_access_token, ai_api_key, meta_app_secret,
              key_version)
    on alphadome.bot_tenants to alphadome_app;
-- Revoking the table privilege also revoked any column grant made by a later migration that
-- ran first on this database (0011's `attention` flag): give those back where they exist.
do $$
declare
    c text;
begin
    foreach c in array array['attention', 'attention_at'] loop
        if exists (select 1 from information_schema.columns
                   where table_schema = 'alphadome' and table_name = 'bot_tenants'
                     and column_name = c) then
            execute format('grant update (%I) on alphadome.bot_tenants to alphadome_app', c);
        end if;
    end loop;
end
$$;

---------------------------------------------------------------------------------------------
-- Enable and FORCE row-level security on every table of the alphadome schema and on the
-- public tables that hold tenants' data, and give the operator its explicit path to each.
do $$
declare
    t regclass;
begin
    for t in
        select c.oid::regclass
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p')
          and (n.nspname = 'alphadome'
               or (n.nspname = 'public'
                   and c.relname in ('brands', 'conversations', 'users', 'subscriptions')))
    loop
        execute format('alter table %s enable row level security', t);
        execute format('alter table %s force row level security', t);
        execute format('drop policy if exists operator_all on %s', t);
        execute format(
            'create policy operator_all on %s for all to alphadome_operator using (true) with check (true)',
            t);
    end loop;
end
$$;

---------------------------------------------------------------------------------------------
-- Owners' policies. The old `admin_own_brand` policies (0003) were `for all` and, on the
-- public tables, keyed on a brand column the owner wrote itself; they are replaced by one
-- policy per command an owner may run. Each checks the row's tenant against the owner's
-- brand, in `using` and in `with check`. `(select ...)` makes each helper an InitPlan,
-- evaluated once per statement; `= any (array)` keeps the bot_tenant_id indexes usable.

-- bot_tenants: read and update (display columns, by grant) of the brand's own tenants.
drop policy if exists admin_own_brand on alphadome.bot_tenants;
drop policy if exists owner_reads_own_tenants on alphadome.bot_tenants;
create policy owner_reads_own_tenants on alphadome.bot_tenants
    for select to authenticated
    using (brand_id = (select alphadome.jwt_brand_id()));
drop policy if exists owner_edits_own_tenants on alphadome.bot_tenants;
create policy owner_edits_own_tenants on alphadome.bot_tenants
    for update to authenticated
    using (brand_id = (select alphadome.jwt_brand_id()))
    with check (brand_id = (select alphadome.jwt_brand_id()));

-- Templates and knowledge: the owner manages its tenants' rows; the `with check` keeps
-- every inserted row on one of its own tenants.
do $$
declare
    t text;
begin
    foreach t in array array['alphadome.bot_templates', 'alphadome.bot_training_data'] loop
        execute format('drop policy if exists admin_own_brand on %s', t);
        execute format('drop policy if exists owner_manages_own_rows on %s', t);
        execute format($p$
            create policy owner_manages_own_rows on %s
                for all to authenticated
                using (bot_tenant_id = any ((select alphadome.jwt_tenant_ids())::uuid[]))
                with check (bot_tenant_id = any ((select alphadome.jwt_tenant_ids())::uuid[]))
        $p$, t);
    end loop;
end
$$;

-- Control settings: read; update within the platform's bound. No insert or delete (no grant,
-- and no policy either).
drop policy if exists admin_own_brand on alphadome.bot_control_settings;
drop policy if exists owner_reads_own_settings on alphadome.bot_control_settings;
create policy owner_reads_own_settings on alphadome.bot_control_settings
    for select to authenticated
    using (bot_tenant_id = any ((select alphadome.jwt_tenant_ids())::uuid[]));
drop policy if exists owner_edits_own_settings on alphadome.bot_control_settings;
create policy owner_edits_own_settings on alphadome.bot_control_settings
    for update to authenticated
    using (bot_tenant_id = any ((select alphadome.jwt_tenant_ids())::uuid[]))
    with check (
        bot_tenant_id = any ((select alphadome.jwt_tenant_ids())::uuid[])
        and max_messages_per_hour <= greatest(
            (select alphadome.platform_max_messages_per_hour()),
            coalesce(alphadome.stored_hourly_cap(id), 0))
    );

-- Usage counters: read only.
drop policy if exists admin_own_brand on alphadome.bot_usage_counters;
drop policy if exists owner_reads_own_usage on alphadome.bot_usage_counters;
create policy owner_reads_own_usage on alphadome.bot_usage_counters
    for select to authenticated
    using (bot_tenant_id = any ((select alphadome.jwt_tenant_ids())::uuid[]));

-- Messages, customers, subscriptions: read only, and only rows of the brand's own tenants
-- (brand and tenant both checked; a row without a tenant belongs to no owner). A second,
-- RESTRICTIVE policy holds the same boundary for every command: on the live database these
-- public tables may carry older permissive policies of their own, and permissive policies
-- add up; a restrictive one is ANDed with all of them, so none can widen an owner's reach.
do $$
declare
    t text;
begin
    foreach t in array array['public.conversations', 'public.users', 'public.subscriptions'] loop
        execute format('drop policy if exists admin_own_brand on %s', t);
        execute format('drop policy if exists owner_reads_own_rows on %s', t);
        execute format($p$
            create policy owner_reads_own_rows on %s
                for select to authenticated
                using (brand_id = (select alphadome.jwt_brand_id())
                       and bot_tenant_id = any ((select alphadome.jwt_tenant_ids())::uuid[]))
        $p$, t);
        execute format('drop policy if exists owner_boundary on %s', t);
        execute format($p$
            create policy owner_boundary on %s
                as restrictive
                for all to authenticated
                using (brand_id = (select alphadome.jwt_brand_id())
                       and bot_tenant_id = any ((select alphadome.jwt_tenant_ids())::uuid[]))
                with check (brand_id = (select alphadome.jwt_brand_id())
                            and bot_tenant_id = any ((select alphadome.jwt_tenant_ids())::uuid[]))
        $p$, t);
    end loop;
end
$$;

-- Brands: an owner sees its own brand's row and no other (restrictive for the same reason).
drop policy if exists owner_reads_own_brand on public.brands;
create policy owner_reads_own_brand on public.brands
    for select to authenticated
    using (id = (select alphadome.jwt_brand_id()));
drop policy if exists owner_boundary on public.brands;
create policy owner_boundary on public.brands
    as restrictive
    for all to authenticated
    using (id = (select alphadome.jwt_brand_id()))
    with check (id = (select alphadome.jwt_brand_id()));

---------------------------------------------------------------------------------------------
-- The functions' policies on tagged tables: the brand in `with check` is the acting tenant's
-- brand, looked up (one primary-key read per statement, as an InitPlan), not the
-- `alphadome.brand_id` setting.
do $$
declare
    t text;
begin
    foreach t in array array['public.conversations', 'public.users', 'public.subscriptions'] loop
        execute format('drop policy if exists app_own_tenant on %s', t);
        execute format($p$
            create policy app_own_tenant on %s
                for all to alphadome_app
                using (bot_tenant_id = (select alphadome.current_tenant_id()))
                with check (bot_tenant_id = (select alphadome.current_tenant_id())
                            and brand_id = (select alphadome.acting_brand_id()))
        $p$, t);
    end loop;
end
$$;
