-- Tables of the platform.
--
-- `public.brands`, `public.users`, `public.conversations` and `public.subscriptions` may
-- already exist in the production (Supabase) database with the seed's columns and live data.
-- They are created only when absent, and every column the pipeline needs is added with
-- `add column if not exists`, so this runs on an empty database and on the live one.
-- Columns added to existing tables are nullable or have defaults: old rows stay valid.

create schema if not exists alphadome;

-- Keeps `updated_at` true without trusting every writer to remember it.
create or replace function alphadome.touch_updated_at() returns trigger
language plpgsql
set search_path = ''
as $$
begin
    new.updated_at := now();
    return new;
end
$$;

---------------------------------------------------------------------------------------------
-- public.brands: one per business (the owner of logs and of the admin's JWT claim).
create table if not exists public.brands (
    id uuid primary key default gen_random_uuid(),
    created_at timestamptz not null default now()
);
alter table public.brands add column if not exists name text;
alter table public.brands add column if not exists is_platform_owner boolean not null default false;

---------------------------------------------------------------------------------------------
-- alphadome.bot_tenants: one per business number on the platform.
create table if not exists alphadome.bot_tenants (
    id uuid primary key default gen_random_uuid(),
    client_name text not null check (length(btrim(client_name)) > 0),
    -- The business's own contact number, digits with country code (e.g. 254702245555).
    client_phone text not null check (client_phone ~ '^[1-9][0-9]{7,14}$'),
    point_of_contact_name text,
    -- A brand is never deleted while a tenant still logs under it.
    brand_id uuid not null references public.brands (id) on delete restrict,
    -- The routing key: Meta's id of the number that receives the customers' messages.
    whatsapp_phone_number_id text not null check (whatsapp_phone_number_id ~ '^[0-9]{5,32}$'),
    -- Ciphertexts (see shared/src/crypto.rs): `v<key version>.<base64 nonce||ciphertext>`.
    -- Never plaintext: the check rejects anything that is not in that envelope.
    whatsapp_access_token text check (whatsapp_access_token ~ '^v[0-9]+\.[A-Za-z0-9+/=]+$'),
    ai_api_key text check (ai_api_key ~ '^v[0-9]+\.[A-Za-z0-9+/=]+$'),
    -- Optional: the app secret of a business that uses its own Meta app.
    meta_app_secret text check (meta_app_secret ~ '^v[0-9]+\.[A-Za-z0-9+/=]+$'),
    -- The data key version every ciphertext of this row is under (rotation moves it up).
    key_version integer not null default 1 check (key_version > 0),
    is_active boolean not null default true,
    is_verified boolean not null default false,
    -- Set when Graph answers 190 (token expired or revoked): the operator must renew it.
    needs_token_refresh boolean not null default false,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint bot_tenants_client_phone_key unique (client_phone),
    constraint bot_tenants_whatsapp_phone_number_id_key unique (whatsapp_phone_number_id)
);
create index if not exists bot_tenants_brand_id_idx on alphadome.bot_tenants (brand_id);
drop trigger if exists bot_tenants_touch on alphadome.bot_tenants;
create trigger bot_tenants_touch before update on alphadome.bot_tenants
    for each row execute function alphadome.touch_updated_at();

---------------------------------------------------------------------------------------------
-- alphadome.bot_templates: the tenant's prompts; at most one default per tenant.
create table if not exists alphadome.bot_templates (
    id uuid primary key default gen_random_uuid(),
    bot_tenant_id uuid not null references alphadome.bot_tenants (id) on delete cascade,
    template_name text not null check (length(btrim(template_name)) > 0),
    system_prompt text not null,
    tone text,
    -- Optional model override (else OPENAI_MODEL).
    model text,
    is_default boolean not null default false,
    is_active boolean not null default true,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint bot_templates_tenant_name_key unique (bot_tenant_id, template_name)
);
create unique index if not exists bot_templates_one_default_per_tenant
    on alphadome.bot_templates (bot_tenant_id) where is_default;
drop trigger if exists bot_templates_touch on alphadome.bot_templates;
create trigger bot_templates_touch before update on alphadome.bot_templates
    for each row execute function alphadome.touch_updated_at();

---------------------------------------------------------------------------------------------
-- alphadome.bot_training_data: FAQ, canned answers and other grounding per tenant.
create table if not exists alphadome.bot_training_data (
    id uuid primary key default gen_random_uuid(),
    bot_tenant_id uuid not null references alphadome.bot_tenants (id) on delete cascade,
    data_type text not null default 'faq' check (data_type ~ '^[a-z][a-z_]{0,31}$'),
    question text not null check (length(btrim(question)) > 0),
    answer text not null check (length(btrim(answer)) > 0),
    category text,
    priority integer not null default 0,
    is_active boolean not null default true,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    -- Re-importing the same question updates it instead of duplicating it.
    constraint bot_training_data_tenant_question_key unique (bot_tenant_id, data_type, question)
);
create index if not exists bot_training_data_active_idx
    on alphadome.bot_training_data (bot_tenant_id) where is_active;
drop trigger if exists bot_training_data_touch on alphadome.bot_training_data;
create trigger bot_training_data_touch before update on alphadome.bot_training_data
    for each row execute function alphadome.touch_updated_at();

---------------------------------------------------------------------------------------------
-- alphadome.bot_control_settings: exactly one row per tenant.
create table if not exists alphadome.bot_control_settings (
    id uuid primary key default gen_random_uuid(),
    bot_tenant_id uuid not null references alphadome.bot_tenants (id) on delete cascade,
    is_bot_enabled boolean not null default true,
    max_messages_per_hour integer not null default 200 check (max_messages_per_hour > 0),
    enable_ai_responses boolean not null default true,
    escalation_phone text check (escalation_phone ~ '^[1-9][0-9]{7,14}$'),
    -- After an escalation the bot stays quiet in that conversation for this long.
    escalation_quiet_minutes integer not null default 60 check (escalation_quiet_minutes >= 0),
    -- Sent once, before the first answer, to a customer who never wrote to this tenant.
    welcome_message text,
    mark_messages_read boolean not null default true,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint bot_control_settings_tenant_key unique (bot_tenant_id)
);
drop trigger if exists bot_control_settings_touch on alphadome.bot_control_settings;
create trigger bot_control_settings_touch before update on alphadome.bot_control_settings
    for each row execute function alphadome.touch_updated_at();

---------------------------------------------------------------------------------------------
-- alphadome.bot_usage_counters: the atomic hourly counter behind max_messages_per_hour.
create table if not exists alphadome.bot_usage_counters (
    bot_tenant_id uuid not null references alphadome.bot_tenants (id) on delete cascade,
    hour_start timestamptz not null,
    replies integer not null default 0,
    primary key (bot_tenant_id, hour_start)
);

---------------------------------------------------------------------------------------------
-- public.users: the customers. One row per (tenant, customer): a person who writes to two
-- businesses is two rows, so no business ever sees another's customer list.
create table if not exists public.users (
    id uuid primary key default gen_random_uuid(),
    created_at timestamptz not null default now()
);
alter table public.users add column if not exists phone text;
alter table public.users add column if not exists full_name text;
alter table public.users add column if not exists brand_id uuid;
alter table public.users add column if not exists bot_tenant_id uuid
    references alphadome.bot_tenants (id) on delete cascade;
-- WhatsApp's business-scoped user id (2026), for customers whose number is hidden.
alter table public.users add column if not exists wa_user_id text;
alter table public.users add column if not exists last_inbound_at timestamptz;
-- Set by an escalation: the bot stays quiet in this conversation until then.
alter table public.users add column if not exists bot_paused_until timestamptz;
create unique index if not exists users_tenant_phone_key
    on public.users (bot_tenant_id, phone) where bot_tenant_id is not null and phone is not null;
create unique index if not exists users_tenant_wa_user_id_key
    on public.users (bot_tenant_id, wa_user_id) where bot_tenant_id is not null and wa_user_id is not null;
create index if not exists users_brand_id_idx on public.users (brand_id);

---------------------------------------------------------------------------------------------
-- public.conversations: every incoming and outgoing message.
create table if not exists public.conversations (
    id uuid primary key default gen_random_uuid(),
    brand_id uuid,
    user_id uuid,
    direction text,
    message_text text,
    created_at timestamptz not null default now()
);
alter table public.conversations add column if not exists bot_tenant_id uuid
    references alphadome.bot_tenants (id) on delete cascade;
-- WhatsApp's message id: the idempotency key of an inbound message; an outbound row gets
-- its id once Graph accepted the send.
alter table public.conversations add column if not exists wa_message_id text;
alter table public.conversations add column if not exists message_type text;
-- inbound: received | answered | ignored; outbound: pending | sent | delivered | read |
-- failed | retry | unknown.
alter table public.conversations add column if not exists status text;
-- faq | canned | ai | fallback | escalation | welcome | control
alter table public.conversations add column if not exists reply_source text;
-- Outbound rows: the inbound message they answer (at most one reply per inbound message).
alter table public.conversations add column if not exists in_reply_to text;
alter table public.conversations add column if not exists matched_entry_id uuid;
alter table public.conversations add column if not exists error_code integer;
-- Why an inbound message got no reply (bot_disabled, hourly_limit, paused, unsubscribed...).
alter table public.conversations add column if not exists note text;
alter table public.conversations add column if not exists ai_prompt_tokens integer;
alter table public.conversations add column if not exists ai_completion_tokens integer;
alter table public.conversations add column if not exists status_updated_at timestamptz;
create unique index if not exists conversations_wa_message_id_key
    on public.conversations (wa_message_id);
create unique index if not exists conversations_one_reply_per_inbound
    on public.conversations (in_reply_to, reply_source) where direction = 'outgoing' and in_reply_to is not null;
create index if not exists conversations_brand_id_idx on public.conversations (brand_id);
create index if not exists conversations_tenant_user_idx
    on public.conversations (bot_tenant_id, user_id, created_at desc);

---------------------------------------------------------------------------------------------
-- public.subscriptions: whether a customer receives messages from a tenant (STOP/START).
create table if not exists public.subscriptions (
    id uuid primary key default gen_random_uuid(),
    user_id uuid,
    brand_id uuid,
    created_at timestamptz not null default now()
);
alter table public.subscriptions add column if not exists bot_tenant_id uuid
    references alphadome.bot_tenants (id) on delete cascade;
alter table public.subscriptions add column if not exists is_subscribed boolean not null default true;
alter table public.subscriptions add column if not exists updated_at timestamptz not null default now();
create unique index if not exists subscriptions_tenant_user_key
    on public.subscriptions (bot_tenant_id, user_id) where bot_tenant_id is not null;
create index if not exists subscriptions_brand_id_idx on public.subscriptions (brand_id);
