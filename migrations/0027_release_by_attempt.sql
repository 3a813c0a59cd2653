-- A claim given back after a panic, or after planning asked to try again later (a voice note
-- the network could not fetch yet), is the attempt's own: release_inbound_batch now takes the
-- attempt (0026) and releases only the messages that attempt still holds. Before, it released
-- every `processing` row of the ids it was given — a claim another worker had taken over after
-- the lease ran out included, which a third delivery could then claim while the second was
-- still answering. Without an attempt (an older caller), it behaves as before.
create or replace function alphadome.release_inbound_batch(p jsonb) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_n integer;
    v_attempt uuid := (p ->> 'attempt')::uuid;
begin
    perform alphadome.act_for_tenant((p ->> 'tenant_id')::uuid);
    update public.conversations c
       set status = 'retry', status_updated_at = now()
     where c.bot_tenant_id = alphadome.current_tenant_id()
       and c.direction = 'incoming'
       and c.status = 'processing'
       and (v_attempt is null or c.attempt = v_attempt)
       and c.wa_message_id in (select jsonb_array_elements_text(coalesce(p -> 'wa_message_ids', '[]'::jsonb)));
    get diagnostics v_n = row_count;
    return jsonb_build_object('released', v_n);
end
$$;

revoke all on function alphadome.release_inbound_batch(jsonb) from public;
grant execute on function alphadome.release_inbound_batch(jsonb) to alphadome_app;
