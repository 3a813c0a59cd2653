-- Every reply the responder sends carries its row's id to Meta (`biz_opaque_callback_data`,
-- which Meta returns in each status of that message), so a status can find its reply even when
-- the responder never recorded the wamid Graph gave it:
--
-- * a worker that died between sending and marking left the reply `pending` without a wamid —
--   Meta's `sent` now records the wamid and moves it to `sent`, and its later statuses follow;
-- * a send Graph timed out on (marked `retry`) that Meta delivered anyway — the status records
--   it as sent before the redelivery, and the redelivery's record then finds the reply sent and
--   does not send it again (the one duplicate the pipeline could not rule out, now narrowed to
--   a redelivery that comes before Meta's status).
--
-- Only an outgoing row of the tenant this transaction acts for (RLS and the explicit check),
-- without a wamid yet, still `pending` or `retry`, is adopted; a status of a message sent by
-- another tool on the same number, or naming a row that already has its wamid, is kept (and
-- dropped after a day) as before.

-- 0023's apply_or_keep_status, adopting the reply the status names before keeping it.
create or replace function alphadome.apply_or_keep_status(p jsonb) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_tenant uuid := alphadome.current_tenant_id();
    v_reply uuid;
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
    if p ->> 'reply_id' ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
        v_reply := (p ->> 'reply_id')::uuid;
        update public.conversations c
           set wa_message_id = p ->> 'wa_message_id'
         where c.id = v_reply
           and c.bot_tenant_id = v_tenant
           and c.direction = 'outgoing'
           and c.wa_message_id is null
           and c.status in ('pending', 'retry');
        if found then
            v_out := alphadome.apply_status_item(p);
            return jsonb_build_object('updated', (v_out ->> 'updated')::integer, 'pending', false);
        end if;
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

revoke all on function alphadome.apply_or_keep_status(jsonb) from public;
grant execute on function alphadome.apply_or_keep_status(jsonb) to alphadome_app;
