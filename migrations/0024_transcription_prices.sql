-- Prices for estimating what voice notes cost (issue 14 counted them, unpriced until now).
-- OpenAI's gpt-4o-mini-transcribe bills by tokens (audio in, text out); servers that bill by
-- duration (whisper-1) report seconds. Operator-editable like the rest of the table.
insert into alphadome.platform_prices (item, usd, unit, note) values
    ('transcription_input_tokens', 3.00, 'per million tokens', 'gpt-4o-mini-transcribe audio input'),
    ('transcription_output_tokens', 5.00, 'per million tokens', 'gpt-4o-mini-transcribe text output'),
    ('transcription_seconds', 0.0001, 'per second of audio', 'whisper-1, $0.006 per minute')
on conflict (item) do nothing;
