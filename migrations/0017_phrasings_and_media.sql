-- Several phrasings per knowledge entry, and the per-tenant switches for voice notes and
-- pictures (issue 14; the dashboard's Knowledge and Settings pages use both, issue 12).
--
-- A phrasing is another way a customer asks an entry's question ("bei ya guitar?",
-- "how much is a guitar"). The matcher uses every phrasing of an active entry as well as its
-- question. `source` says who wrote it: 'owner' (typed on the dashboard, or added from an
-- unanswered customer message) or 'generated' (`alphadome faq expand`, reviewable and
-- deletable by the owner). A phrasing belongs to exactly one entry of one tenant: the
-- composite foreign key keeps its tenant equal to its entry's, whoever writes it.

do $$
begin
    if not exists (select 1 from pg_constraint
                   where conname = 'bot_training_data_id_tenant_key'
                     and conrelid = 'alphadome.bot_training_data'::regclass) then
        alter table alphadome.bot_training_data
            add constraint bot_training_data_id_tenant_key unique (id, bot_tenant_id);
    end if;
end
$$;

create table if not exists alphadome.bot_training_phrasings (
    id uuid primary key default gen_random_uuid(),
    bot_tenant_id uuid not null references alphadome.bot_tenants (id) on delete cascade,
    training_data_id uuid not null,
    phrasing text not null check (length(btrim(phrasing)) between 1 and 500),
    source text not null default 'owner' check (source in ('owner', 'generated')),
    created_at timestamptz not null default now(),
    constraint bot_training_phrasings_entry_fkey foreign key (training_data_id, bot_tenant_id)
        references alphadome.bot_training_data (id, bot_tenant_id) on delete cascade
);
-- One copy of a phrasing per entry (case-insensitive); the tenant index serves the matcher's
-- load and every policy.
create unique index if not exists bot_training_phrasings_entry_phrasing_key
    on alphadome.bot_training_phrasings (training_data_id, lower(phrasing));
create index if not exists bot_training_phrasings_tenant_idx
    on alphadome.bot_training_phrasings (bot_tenant_id);

-- Voice notes are transcribed and pictures shown to the model by default (DESIGN: "each
-- tenant can switch voice notes and pictures off"); both need an AI key (the tenant's or the
-- platform's) as well.
alter table alphadome.bot_control_settings
    add column if not exists voice_notes_enabled boolean not null default true;
alter table alphadome.bot_control_settings
    add column if not exists pictures_enabled boolean not null default true;

---------------------------------------------------------------------------------------------
-- Privileges and row-level security, as 0010 for every tenant table.
revoke all on alphadome.bot_training_phrasings from anon, authenticated;
grant select, insert, delete on alphadome.bot_training_phrasings to alphadome_app;
-- Owners read, add (always as 'owner': `source` is not theirs to set) and delete.
grant select on alphadome.bot_training_phrasings to authenticated;
grant insert (bot_tenant_id, training_data_id, phrasing)
    on alphadome.bot_training_phrasings to authenticated;
grant delete on alphadome.bot_training_phrasings to authenticated;
grant update (voice_notes_enabled, pictures_enabled)
    on alphadome.bot_control_settings to authenticated;

alter table alphadome.bot_training_phrasings enable row level security;
alter table alphadome.bot_training_phrasings force row level security;
drop policy if exists operator_all on alphadome.bot_training_phrasings;
create policy operator_all on alphadome.bot_training_phrasings
    for all to alphadome_operator using (true) with check (true);
drop policy if exists owner_manages_own_rows on alphadome.bot_training_phrasings;
create policy owner_manages_own_rows on alphadome.bot_training_phrasings
    for all to authenticated
    using (bot_tenant_id = any ((select alphadome.jwt_tenant_ids())::uuid[]))
    with check (bot_tenant_id = any ((select alphadome.jwt_tenant_ids())::uuid[]));
drop policy if exists app_own_tenant on alphadome.bot_training_phrasings;
create policy app_own_tenant on alphadome.bot_training_phrasings
    for all to alphadome_app
    using (bot_tenant_id = (select alphadome.current_tenant_id()))
    with check (bot_tenant_id = (select alphadome.current_tenant_id()));
