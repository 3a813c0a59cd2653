-- The approved WhatsApp template a tenant's hand-over notice falls back to (issue 14).
--
-- The owner's notice goes as free text. Meta delivers free text only while the owner's
-- 24-hour window with the business number is open; outside it Graph answers 131047 and the
-- owner never learns that a customer is waiting. Only an approved template reaches a number
-- outside that window, so the responder retries a refused notice as this template.
-- Both columns null: no template, the refusal is logged (`tenant show` warns about it).
--
-- The template's body takes three parameters: {{1}} the business name, {{2}} the customer
-- (name and number, as the free-text notice gives them), {{3}} their message (truncated).

alter table alphadome.bot_control_settings
    add column if not exists escalation_template_name text,
    add column if not exists escalation_template_language text;

-- Meta's rules: a template name is lowercase letters, digits and underscores (at most 512);
-- a language is a code such as `en`, `en_US`, `sw`. Both or neither: a name without a
-- language cannot be sent.
alter table alphadome.bot_control_settings
    drop constraint if exists bot_control_settings_escalation_template_check;
alter table alphadome.bot_control_settings
    add constraint bot_control_settings_escalation_template_check check (
        (escalation_template_name is null and escalation_template_language is null)
        or (escalation_template_name ~ '^[a-z0-9_]+$'
            and char_length(escalation_template_name) <= 512
            and escalation_template_language ~ '^[a-z]{2,3}(_[A-Za-z]{2,4})?$')
    );

-- The functions' role reads these through its table-wide `select` (0003) and
-- `tenant_context`'s `to_jsonb(s)` (0004): nothing to grant for reading. Owners read the
-- table (0010's table-wide `select`) and may change their own template, as they change their
-- escalation phone; 0010's row policy keeps them to their own row.
grant update (escalation_template_name, escalation_template_language)
    on alphadome.bot_control_settings to authenticated;
