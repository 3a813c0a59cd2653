-- A tenant's whole context in one round trip.
--
-- The responder needs the tenant, its default template, its active training data and its
-- settings for every message. This function returns all four as one JSON document, acting
-- for that tenant (so row-level security scopes every read), in a single statement.

create or replace function alphadome.tenant_context(p_tenant_id uuid) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_context jsonb;
begin
    perform alphadome.act_for_tenant(p_tenant_id);
    select jsonb_build_object(
        'tenant', to_jsonb(t),
        'template', (
            select to_jsonb(tp)
            from alphadome.bot_templates tp
            where tp.bot_tenant_id = t.id and tp.is_default and tp.is_active
        ),
        'settings', (
            select to_jsonb(s)
            from alphadome.bot_control_settings s
            where s.bot_tenant_id = t.id
        ),
        'training', coalesce((
            select jsonb_agg(to_jsonb(d) order by d.priority desc, d.created_at, d.id)
            from alphadome.bot_training_data d
            where d.bot_tenant_id = t.id and d.is_active
        ), '[]'::jsonb)
    )
    into v_context
    from alphadome.bot_tenants t
    where t.id = p_tenant_id;
    return v_context;
end
$$;
revoke all on function alphadome.tenant_context(uuid) from public;
grant execute on function alphadome.tenant_context(uuid) to alphadome_app;
grant execute on function alphadome.act_for_tenant(uuid) to alphadome_app;
