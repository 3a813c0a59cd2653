-- The tenant context (0004) also carries each active entry's phrasings (0017), so the
-- responder's FAQ index uses every way of asking an entry's question.
--
-- Still one statement and one round trip: the phrasings are grouped per entry in one pass
-- over the tenant's phrasings (the tenant index of 0017) and joined to the entries, rather
-- than looked up entry by entry. An entry without phrasings gets `[]`. Same signature,
-- privileges and acting-for-the-tenant as 0004: row-level security still scopes every read.

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
            select jsonb_agg(
                       to_jsonb(d) || jsonb_build_object('phrasings', coalesce(p.list, '[]'::jsonb))
                       order by d.priority desc, d.created_at, d.id)
            from alphadome.bot_training_data d
            left join (
                select ph.training_data_id,
                       jsonb_agg(ph.phrasing order by ph.created_at, ph.id) as list
                from alphadome.bot_training_phrasings ph
                where ph.bot_tenant_id = t.id
                group by ph.training_data_id
            ) p on p.training_data_id = d.id
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
