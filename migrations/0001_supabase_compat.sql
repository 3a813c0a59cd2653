-- Supabase compatibility.
--
-- In production the database is Supabase, which already has the roles `anon`,
-- `authenticated` and `service_role`, the schema `auth` and the function `auth.jwt()`.
-- Locally (and in CI) there is plain PostgreSQL, so this migration creates each of them
-- only where it is absent, with the same meaning Supabase gives them. It never replaces
-- Supabase's own definitions.

do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'anon') then
        create role anon nologin noinherit;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'authenticated') then
        create role authenticated nologin noinherit;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'service_role') then
        -- Supabase's service role bypasses row-level security; ours mirrors it so that
        -- policies are tested against the same set of roles.
        create role service_role nologin noinherit bypassrls;
    end if;
exception when duplicate_object or unique_violation then
    -- Roles are cluster-wide: another database migrating at the same moment (parallel
    -- tests) created it first. It exists, which is all we need.
    null;
end
$$;

create schema if not exists auth;

-- `auth.jwt()` the Supabase way: the claims PostgREST puts in `request.jwt.claims`
-- (or the older `request.jwt.claim`). After a transaction that set them locally, a session
-- holds an empty string, which means "no claims", not an error.
do $$
begin
    if not exists (
        select 1
        from pg_proc p
        join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = 'auth' and p.proname = 'jwt'
    ) then
        execute $f$
            create function auth.jwt() returns jsonb
            language sql stable
            as $body$
                select coalesce(
                    nullif(current_setting('request.jwt.claim', true), ''),
                    nullif(current_setting('request.jwt.claims', true), '')
                )::jsonb
            $body$
        $f$;
    end if;
end
$$;

grant usage on schema auth to anon, authenticated, service_role;

-- gen_random_uuid() is built in from PostgreSQL 13; pgcrypto is not needed.
