-- Legacy single-tenant mode (LEGACY_PHONE_NUMBER_ID + DEFAULT_BRAND_ID): messages to that one
-- number are answered by the tenant of the old deployment's brand, even before the number
-- itself is registered on a tenant. Like resolve_tenant, this crosses tenants, so it is a
-- narrow SECURITY DEFINER function with a pinned search_path returning only routing fields.

create or replace function alphadome.resolve_tenant_by_brand(p_brand_id uuid)
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
    where t.brand_id = p_brand_id
    order by t.created_at, t.id
    limit 1
$$;
revoke all on function alphadome.resolve_tenant_by_brand(uuid) from public;
grant execute on function alphadome.resolve_tenant_by_brand(uuid) to alphadome_app, service_role;
