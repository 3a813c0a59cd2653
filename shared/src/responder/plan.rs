//! From the facts of one message to the replies to record: the policy's decision made
//! concrete (FAQ answer, AI answer, hand-over, control confirmations, the welcome message).
//! `ask` runs the very same code without claiming, sending or logging.

use chrono::{TimeZone, Utc};
use secrecy::SecretString;

use super::policy::{self, Decision, Facts, Source};
use super::send::OpenError;
use super::{job_span, AskAnswer, Outbox, Responder, Retry, TenantContext};
use crate::crypto::SecretColumn;
use crate::domain::TenantId;
use crate::intent::{detect_control_intent, ControlIntent};
use crate::job::{Job, JobKind};
use crate::openai::{AiError, AudioInput, ChatRequest, ImageInput, Transcript};
use crate::store::{
    BeginInbound, EntryRecord, Foreseen, Inbound, PlannedReply, RecordReplies, TenantProblem,
};
use crate::webhook::InboundMessage;
use crate::whatsapp::{MediaError, MAX_AUDIO_BYTES, MAX_IMAGE_BYTES};

impl Responder {
    /// What is known of a message before it is claimed.
    pub(super) fn prepare<'a>(&self, ctx: &'a TenantContext, job: &'a Job) -> Incoming<'a> {
        let JobKind::Message(m) = &job.kind else {
            unreachable!("only message jobs are prepared")
        };
        let t = &ctx.record.tenant;
        // Decided on Meta's type: a reaction's emoji or an order's note is not a question.
        let text = policy::said_in(&m.message_type, m.text.as_deref());
        let words = policy::words_of(&m.message_type, m.text.as_deref());
        let intent = words.and_then(detect_control_intent);
        let faq = match (words, intent) {
            (Some(text), None) => ctx.match_faq(text),
            _ => None,
        };
        // Whether a key exists is enough here; it is opened only if the AI is asked.
        let has_key = t.ai_api_key.is_some() || self.platform_ai_key.is_some();
        let ai_available = ctx.settings.enable_ai_responses && has_key;
        // Media is fetched with the tenant's token from Graph (never in a dry run).
        let fetchable = m.media_id.is_some() && matches!(self.outbox, Outbox::Graph(_));
        let media = match m.message_type.as_str() {
            "audio" if fetchable && has_key && ctx.settings.voice_notes_enabled => {
                Some(MediaUse::Transcribe)
            }
            "image" if fetchable && ai_available && ctx.settings.pictures_enabled => {
                Some(MediaUse::Show)
            }
            _ => None,
        };
        Incoming {
            phone_number_id: &job.phone_number_id,
            m,
            text,
            intent,
            faq,
            ai_available,
            media,
            bot_enabled: t.is_active && ctx.settings.is_bot_enabled,
            span: job_span(job),
        }
    }

    /// The policy's decision for a claimed message, as the replies to record.
    pub(super) async fn plan(
        &self,
        ctx: &TenantContext,
        msg: &Incoming<'_>,
        begin: &Inbound,
    ) -> Plan {
        let facts = self.facts(ctx, msg, begin);
        self.plan_for(ctx, msg, begin, &facts).await
    }

    /// What the policy decides on, for one claimed message.
    fn facts<'a>(
        &self,
        ctx: &'a TenantContext,
        msg: &'a Incoming<'_>,
        begin: &Inbound,
    ) -> Facts<'a> {
        let t = &ctx.record.tenant;
        let m = msg.m;
        let now = Utc::now();
        Facts {
            tenant_active: t.is_active,
            bot_enabled: msg.bot_enabled,
            has_token: t.whatsapp_access_token.is_some()
                || matches!(self.outbox, Outbox::DryRun(_)),
            was_subscribed: begin.was_subscribed,
            paused_until: begin.paused_until,
            replies_this_hour: begin.replies_this_hour,
            max_per_hour: ctx.settings.max_messages_per_hour,
            message_time: Utc.timestamp_opt(m.timestamp, 0).single().unwrap_or(now),
            now,
            text: msg.text,
            message_type: &m.message_type,
            intent: msg.intent,
            faq: msg.faq,
            ai_available: msg.ai_available,
            can_transcribe: msg.media == Some(MediaUse::Transcribe) && !begin.ai_budget_exhausted,
            can_see_pictures: msg.media == Some(MediaUse::Show) && !begin.ai_budget_exhausted,
        }
    }

    /// The replies for the policy's decision on `facts`.
    async fn plan_for(
        &self,
        ctx: &TenantContext,
        msg: &Incoming<'_>,
        begin: &Inbound,
        facts: &Facts<'_>,
    ) -> Plan {
        let t = &ctx.record.tenant;
        let business = t.client_name.as_str();
        let mut plan = Plan::default();
        let mut escalate: Option<policy::Handover> = None;
        let first = policy::decide(facts);
        // A voice note is transcribed, then its words decided on like a text's.
        let mut transcript: Option<String> = None;
        let mut not_heard = false;
        if first == Decision::Transcribe {
            match self.hear(ctx, msg).await {
                Ok(heard) => {
                    plan.transcriptions = 1;
                    plan.transcription_seconds = heard.seconds.map(|s| s.max(0.0).ceil() as u64);
                    plan.transcription_tokens = (heard.input_tokens, heard.output_tokens);
                    transcript = Some(heard.text);
                }
                Err(Unheard::Again(why)) => {
                    plan.retry = Some(why);
                    return plan;
                }
                Err(Unheard::Failed(problem)) => {
                    plan.problem = problem;
                    not_heard = true;
                }
            }
        }
        let heard_facts = transcript.as_deref().map(|t| {
            // Spoken words may ask for a person; STOP and START must be typed (they change
            // the subscription when the message is claimed, before anything is heard).
            let intent = detect_control_intent(t).filter(|i| *i == ControlIntent::Human);
            Facts {
                text: Some(t),
                message_type: "text",
                intent,
                faq: intent.is_none().then(|| ctx.match_faq(t)).flatten(),
                can_transcribe: false,
                ..facts.clone()
            }
        });
        let decision = match (&heard_facts, not_heard) {
            (Some(heard), _) => policy::decide(heard),
            (None, true) => Decision::AskForText(policy::Unreadable::VoiceNote),
            (None, false) => first,
        };
        plan.transcript = transcript.clone();
        // What the customer said, as the AI and the owner's notice see it.
        let words = heard_facts.as_ref().and_then(|f| f.text).or(msg.text);
        let quoted = match (&transcript, words) {
            (Some(t), _) => Some(format!("(voice note) {t}")),
            (None, w) => w.map(str::to_owned),
        };
        match decision {
            Decision::Silent(why) => {
                if matches!(why, policy::Silence::NoToken) {
                    tracing::error!("tenant has no WhatsApp token; cannot reply");
                    plan.problem = Some(TenantProblem::NoWhatsappToken);
                }
                plan.silent = Some(why.note());
                return plan;
            }
            Decision::Control(ControlIntent::Stop) => {
                plan.reply(Source::Control, policy::stop_confirmation(business));
            }
            Decision::Control(_) => {
                plan.reply(Source::Control, policy::start_confirmation(business));
            }
            Decision::Answer(entry) => plan.answer(entry),
            Decision::AskForText(what) => {
                plan.reply(Source::Fallback, policy::ask_for_text_reply(what));
            }
            Decision::AskAi if begin.ai_budget_exhausted => {
                tracing::warn!(
                    tenant_id = %t.id,
                    "monthly AI budget reached; handing over to a person instead of asking the AI"
                );
                plan.budget_stop = true;
                escalate = Some(policy::Handover::Unanswered);
            }
            Decision::Transcribe => {
                unreachable!("a transcript is decided on again, never transcribed twice")
            }
            Decision::AskAi => {
                let text = words.unwrap_or_default();
                match self.ai_key(ctx).await {
                    Ok(key) => {
                        // The picture, when the policy may show it (caption or not).
                        let picture = if facts.can_see_pictures {
                            match self.look(ctx, msg).await {
                                Ok(image) => Some(image),
                                Err(Unheard::Again(why)) => {
                                    plan.retry = Some(why);
                                    return plan;
                                }
                                Err(Unheard::Failed(_)) => None,
                            }
                        } else {
                            None
                        };
                        if picture.is_none() && words.is_none() {
                            // A bare picture that could not be fetched: ask for words.
                            plan.reply(
                                Source::Fallback,
                                policy::ask_for_text_reply(policy::Unreadable::Media),
                            );
                        } else {
                            plan.image_inputs = u32::from(picture.is_some());
                            self.answer_with_ai(
                                ctx,
                                key.as_ref(),
                                &begin.history,
                                text,
                                picture.as_ref(),
                                &mut plan,
                                &mut escalate,
                            )
                            .await;
                        }
                    }
                    Err(OpenError::Transient(why)) => {
                        plan.retry = Some(why);
                        return plan;
                    }
                    Err(OpenError::Permanent(problem)) => {
                        plan.problem = Some(problem);
                        escalate = Some(policy::Handover::Unanswered);
                    }
                }
            }
            Decision::Escalate(why) => escalate = Some(why),
        }
        self.finish_plan(ctx, msg, begin, quoted.as_deref(), escalate, plan)
    }

    /// The outcome of a message whose answer does not depend on what its claim finds, decided
    /// before the claim: an FAQ or canned answer, on the usual facts assumed (see
    /// [`assumed`]). The claim records it only if they hold
    /// (migrations/0030_claim_and_record_foreseen.sql); otherwise the message is decided again
    /// on the facts found, as any other.
    pub(super) fn foresee(&self, ctx: &TenantContext, msg: &Incoming<'_>) -> Option<Foresight> {
        let usual = assumed();
        let Decision::Answer(entry) = policy::decide(&self.facts(ctx, msg, &usual)) else {
            return None;
        };
        let answered = || {
            let mut plan = Plan::default();
            plan.answer(entry);
            plan
        };
        let plan = self.finish_plan(ctx, msg, &usual, msg.text, None, answered());
        // A first contact may add a welcome; when it adds nothing, it may be recorded too.
        let first = Inbound {
            first_contact: true,
            ..assumed()
        };
        let on_first = self.finish_plan(ctx, msg, &first, msg.text, None, answered());
        Some(Foresight {
            first_contact_too: on_first.replies.len() == plan.replies.len(),
            plan,
            cap: ctx.settings.max_messages_per_hour,
        })
    }

    /// The AI's answer to `text` (and `picture`), or a hand-over when it fails.
    #[allow(clippy::too_many_arguments)]
    async fn answer_with_ai(
        &self,
        ctx: &TenantContext,
        key: Option<&SecretString>,
        history: &[crate::store::Turn],
        text: &str,
        picture: Option<&ImageInput>,
        plan: &mut Plan,
        escalate: &mut Option<policy::Handover>,
    ) {
        match self.ask_ai(ctx, key, history, text, picture).await {
            Ok(reply) => {
                plan.ai_calls = 1;
                plan.usage = (reply.prompt_tokens, reply.completion_tokens);
                plan.cached_tokens = reply.cached_tokens;
                plan.reply(Source::Ai, reply.text);
            }
            Err(e) => {
                plan.ai_calls = 1;
                tracing::warn!(error = %e, "AI failed; handing over to a person");
                *escalate = Some(policy::Handover::Unanswered);
            }
        }
    }

    /// The hand-over, the budget notice and the welcome message around the decided replies.
    fn finish_plan(
        &self,
        ctx: &TenantContext,
        msg: &Incoming<'_>,
        begin: &Inbound,
        quoted: Option<&str>,
        escalate: Option<policy::Handover>,
        mut plan: Plan,
    ) -> Plan {
        let t = &ctx.record.tenant;
        let m = msg.m;
        let business = t.client_name.as_str();
        if let Some(why) = escalate {
            plan.source = Some(Source::Escalation);
            plan.replies.push(PlannedReply {
                source: "fallback",
                text: policy::handover_reply(business, why),
                to_customer: true,
            });
            if ctx.settings.escalation_phone.is_some() {
                let customer = m.sender().unwrap_or("unknown");
                plan.replies.push(PlannedReply {
                    source: "escalation",
                    text: policy::escalation_notice(
                        business,
                        customer,
                        m.profile_name.as_deref(),
                        quoted,
                        why,
                    ),
                    to_customer: false,
                });
                plan.pause = Some(ctx.settings.escalation_quiet_minutes);
            }
        }
        if begin.budget_notice {
            let percent = begin.budget_percent.unwrap_or(80);
            tracing::warn!(tenant_id = %t.id, percent, "monthly budget passed 80%; telling the owner");
            if ctx.settings.escalation_phone.is_some() {
                plan.replies.push(PlannedReply {
                    source: "budget",
                    text: policy::budget_notice(business, percent),
                    to_customer: false,
                });
            } else {
                tracing::warn!("no escalation phone: the budget notice cannot be sent");
            }
        }
        if begin.first_contact && plan.source != Some(Source::Control) {
            if let Some(welcome) = ctx
                .settings
                .welcome_message
                .as_deref()
                .filter(|w| !w.trim().is_empty())
            {
                plan.replies.insert(
                    0,
                    PlannedReply {
                        source: "welcome",
                        text: welcome.to_owned(),
                        to_customer: true,
                    },
                );
            }
        }
        plan
    }

    /// The AI key for this tenant: its own when it has one, else the platform's. A tenant
    /// key that will not open is that tenant's problem (flagged, the customer is handed over
    /// to a person): it never silently falls back to the platform's key, which would put
    /// one tenant's traffic on the shared bill.
    ///
    /// A data key that cannot be fetched now (the key store is unreachable) is no problem of
    /// the tenant's: the message is given back and retried, nobody is flagged or handed over.
    async fn ai_key(&self, ctx: &TenantContext) -> Result<Option<SecretString>, OpenError> {
        match ctx.record.tenant.ai_api_key.as_deref() {
            Some(sealed) => match self
                .open(ctx.record.tenant.id, SecretColumn::AiApiKey, sealed)
                .await
            {
                Ok(k) => Ok(Some(k)),
                Err(e @ OpenError::Transient(_)) => {
                    tracing::warn!(error = %e, "cannot fetch the data key of the tenant's AI key now; the message will be retried");
                    Err(e)
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot open the tenant's AI key; handing over to a person");
                    Err(OpenError::Permanent(TenantProblem::AiKeyUnreadable))
                }
            },
            None => Ok(self.platform_ai_key.clone()),
        }
    }

    pub(super) async fn ask_ai(
        &self,
        ctx: &TenantContext,
        key: Option<&SecretString>,
        history: &[crate::store::Turn],
        text: &str,
        picture: Option<&ImageInput>,
    ) -> Result<crate::openai::ChatReply, crate::openai::AiError> {
        let key = key.ok_or(crate::openai::AiError::Rejected { status: 401 })?;
        let template = ctx.record.template.as_ref();
        let k = self.options.grounding_entries;
        let grounding = if text.trim().is_empty() {
            // A picture without words: the tenant's first entries (by priority) ground it.
            ctx.record.training.iter().take(k).collect()
        } else {
            ctx.grounding_for(text, k)
        };
        let text = if text.trim().is_empty() && picture.is_some() {
            policy::PICTURE_WITHOUT_WORDS
        } else {
            text
        };
        let limits = &self.options.ai_limits;
        let messages = policy::build_prompt_within(
            limits,
            &ctx.record.tenant.client_name,
            template.map(|t| t.system_prompt.as_str()),
            template.and_then(|t| t.tone.as_deref()),
            &grounding,
            history,
            text,
        );
        let model = limits.model_for(
            template.and_then(|t| t.model.as_deref()),
            &self.options.default_model,
        );
        self.openai
            .complete_seeing(
                key,
                &ChatRequest {
                    model,
                    messages: &messages,
                    max_tokens: limits.max_output_tokens,
                    temperature: 0.3,
                },
                picture,
                self.options.ai_deadline,
            )
            .await
    }

    /// A transient failure while the message is young enough to try again; else a failure
    /// the customer gets the polite request for words for.
    fn again_or_give_up(&self, msg: &Incoming<'_>, why: String) -> Unheard {
        let sent = Utc
            .timestamp_opt(msg.m.timestamp, 0)
            .single()
            .unwrap_or_else(Utc::now);
        let age = (Utc::now() - sent).to_std().unwrap_or_default();
        if age < self.options.media_retry_window {
            Unheard::Again(why)
        } else {
            tracing::warn!(reason = %why, "media still failing after the retry window; asking for words");
            Unheard::Failed(None)
        }
    }

    /// Downloads a message's media with the tenant's token, at most `max_bytes`.
    async fn fetch_media(
        &self,
        ctx: &TenantContext,
        msg: &Incoming<'_>,
        max_bytes: u64,
    ) -> Result<crate::whatsapp::MediaFile, Unheard> {
        let (Outbox::Graph(client), Some(media_id)) = (&self.outbox, msg.m.media_id.as_deref())
        else {
            return Err(Unheard::Failed(None));
        };
        let token = match self.whatsapp_token(ctx).await {
            Ok(token) => token,
            Err(super::send::OpenError::Transient(why)) => {
                return Err(self.again_or_give_up(msg, why))
            }
            // The replies cannot be sent either; the send step flags the tenant.
            Err(super::send::OpenError::Permanent(_)) => return Err(Unheard::Failed(None)),
        };
        client
            .download_media(
                msg.phone_number_id,
                &token,
                media_id,
                max_bytes,
                self.options.media_deadline,
            )
            .await
            .map_err(|e| match e {
                MediaError::Retryable { .. } => self.again_or_give_up(msg, format!("graph: {e}")),
                _ => Unheard::Failed(None),
            })
    }

    /// A voice note's words: downloaded, transcribed with the tenant's AI key (or the
    /// platform's), and dropped; the audio is never stored.
    async fn hear(&self, ctx: &TenantContext, msg: &Incoming<'_>) -> Result<Transcript, Unheard> {
        let key = match self.ai_key(ctx).await {
            Ok(Some(key)) => key,
            Ok(None) => return Err(Unheard::Failed(None)),
            Err(OpenError::Transient(why)) => return Err(self.again_or_give_up(msg, why)),
            // A tenant key that will not open never falls back to the platform's.
            Err(OpenError::Permanent(problem)) => return Err(Unheard::Failed(Some(problem))),
        };
        let audio = self.fetch_media(ctx, msg, MAX_AUDIO_BYTES).await?;
        let input = AudioInput {
            bytes: &audio.bytes,
            mime_type: &audio.mime_type,
        };
        self.openai
            .transcribe(
                &key,
                &self.options.transcribe_model,
                &input,
                self.options.transcribe_deadline,
            )
            .await
            .map_err(|e| match e {
                AiError::Timeout | AiError::RateLimited | AiError::Server { .. } | AiError::Transport => {
                    self.again_or_give_up(msg, format!("transcription: {e}"))
                }
                AiError::Rejected { .. } | AiError::Malformed => {
                    tracing::warn!(error = %e, "voice note not transcribed; asking the customer to type");
                    Unheard::Failed(None)
                }
            })
    }

    /// A picture, as the chat model's image input.
    async fn look(&self, ctx: &TenantContext, msg: &Incoming<'_>) -> Result<ImageInput, Unheard> {
        let picture = self.fetch_media(ctx, msg, MAX_IMAGE_BYTES).await?;
        Ok(ImageInput::from_bytes(&picture.mime_type, &picture.bytes))
    }

    /// The answer policy for one message, without claiming, sending or logging
    /// (`alphadome ask`, the dashboard's "Try it"): the same facts and the same
    /// [`policy::decide`] as a customer's message, as a first message from a subscribed
    /// customer arriving now. When a rule (bot off, hourly cap, tenant inactive, no token)
    /// would keep the assistant silent, `stopped_by` names it and `reply` is what it would say
    /// without that rule.
    pub async fn ask(&self, tenant: TenantId, text: &str) -> Result<AskAnswer, Retry> {
        let ctx = self
            .context(tenant)
            .await?
            .ok_or_else(|| Retry("no such tenant".into()))?;
        let replies_this_hour = self
            .store
            .replies_this_hour(tenant)
            .await
            .map_err(|e| Retry(format!("database: {e:#}")))?;
        let m = InboundMessage {
            wa_message_id: "wamid.ask".into(),
            from_wa_id: None,
            from_user_id: None,
            profile_name: None,
            timestamp: Utc::now().timestamp(),
            message_type: "text".into(),
            text: Some(text.to_owned()),
            reply_id: None,
            media_id: None,
            media_mime_type: None,
            context_message_id: None,
            referral_source_id: None,
        };
        let job = Job::new(
            tenant.0,
            crate::webhook::WebhookEvent {
                phone_number_id: ctx.record.tenant.whatsapp_phone_number_id.clone(),
                kind: crate::webhook::EventKind::Message(m),
            },
        );
        let msg = self.prepare(&ctx, &job);
        let begin = Inbound {
            // This message would be counted too, as a customer's is.
            replies_this_hour: Some(replies_this_hour + 1),
            ..assumed()
        };
        let facts = self.facts(&ctx, &msg, &begin);
        let stopped_by = match policy::decide(&facts) {
            Decision::Silent(why) if why.is_a_switch() => Some(why.note()),
            _ => None,
        };
        let facts = match stopped_by {
            Some(_) => Facts {
                tenant_active: true,
                bot_enabled: true,
                has_token: true,
                replies_this_hour: None,
                ..facts
            },
            None => facts,
        };
        let plan = self.plan_for(&ctx, &msg, &begin, &facts).await;
        if let Some(why) = plan.retry {
            return Err(Retry(why));
        }
        let reply = plan
            .replies
            .iter()
            .find(|r| r.to_customer)
            .map(|r| r.text.clone())
            .unwrap_or_default();
        let question = plan.matched.and_then(|id| {
            ctx.record
                .training
                .iter()
                .find(|e| e.id == id)
                .map(|e| e.question.clone())
        });
        Ok(AskAnswer {
            source: match (plan.source, plan.silent) {
                (Some(s), _) => s.as_str(),
                (None, Some(_)) => "silent",
                (None, None) => "none",
            },
            faq_id: plan.matched,
            question,
            reply,
            stopped_by: stopped_by.or(plan.silent),
        })
    }
}

/// What a claim usually finds: a subscribed customer, not paused, who has written before, no
/// budget notice due, and no count of this hour's replies (the cap is checked by the claim).
fn assumed() -> Inbound {
    Inbound {
        claimed: true,
        user_id: None,
        first_contact: false,
        was_subscribed: true,
        paused_until: None,
        replies_this_hour: None,
        history: Vec::new(),
        ai_budget_exhausted: false,
        budget_notice: false,
        budget_percent: None,
        recorded: None,
    }
}

/// An outcome decided before the claim ([`Responder::foresee`]).
pub(super) struct Foresight {
    pub(super) plan: Plan,
    /// The hourly cap it assumes the customer is within.
    cap: i32,
    /// A first contact changes nothing in it.
    first_contact_too: bool,
}

impl Foresight {
    /// The claim's `foreseen`: the record's input, and the facts it assumes.
    fn foreseen<'a>(&'a self, msg: &'a Incoming<'_>, attempt: uuid::Uuid) -> Foreseen<'a> {
        Foreseen {
            record: self.plan.record(msg, &assumed(), attempt),
            cap: self.cap,
            first_contact_too: self.first_contact_too,
        }
    }
}

/// A message between the steps of [`Responder::handle_messages`].
pub(super) struct Incoming<'a> {
    pub(super) phone_number_id: &'a str,
    pub(super) m: &'a InboundMessage,
    pub(super) text: Option<&'a str>,
    pub(super) intent: Option<ControlIntent>,
    pub(super) faq: Option<&'a EntryRecord>,
    pub(super) ai_available: bool,
    /// What the media of this message may be used for, if anything.
    pub(super) media: Option<MediaUse>,
    pub(super) bot_enabled: bool,
    pub(super) span: tracing::Span,
}

impl Incoming<'_> {
    /// The claim's input, with the outcome foreseen for this message, if any.
    pub(super) fn claim<'a>(
        &'a self,
        attempt: uuid::Uuid,
        foresight: Option<&'a Foresight>,
    ) -> BeginInbound<'a> {
        let m = self.m;
        BeginInbound {
            wa_message_id: &m.wa_message_id,
            attempt,
            phone: m.from_wa_id.as_deref(),
            user_id: m.from_user_id.as_deref(),
            profile_name: m.profile_name.as_deref(),
            message_type: &m.message_type,
            text: m.text.as_deref(),
            intent: self.intent.map(|i| match i {
                ControlIntent::Stop => "stop",
                ControlIntent::Start => "start",
                ControlIntent::Human => "human",
            }),
            count_reply: policy::may_reply(
                self.bot_enabled,
                &m.message_type,
                self.text,
                self.intent,
            ),
            with_history: self.may_ask_ai(),
            foreseen: foresight.map(|f| f.foreseen(self, attempt)),
        }
    }

    /// Whether the policy may hand this message to the AI (then its history is fetched too).
    pub(super) fn may_ask_ai(&self) -> bool {
        self.faq.is_none()
            && self.intent.is_none()
            && (self.media.is_some()
                || (self.ai_available
                    && policy::words_of(&self.m.message_type, self.text).is_some()))
    }
}

/// What a message's media may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MediaUse {
    /// A voice note, transcribed and answered.
    Transcribe,
    /// A picture, shown to the chat model.
    Show,
}

/// Why a voice note or picture was not used.
pub(super) enum Unheard {
    /// A transient failure: the job is tried again.
    Again(String),
    /// For good (with the tenant's problem, if it is one): ask the customer for words.
    Failed(Option<TenantProblem>),
}

/// What the policy decided for one claimed message.
#[derive(Default)]
pub(super) struct Plan {
    /// No reply, for this reason (the message is recorded as ignored).
    pub(super) silent: Option<&'static str>,
    pub(super) source: Option<Source>,
    pub(super) matched: Option<crate::domain::EntryId>,
    pub(super) usage: (Option<u32>, Option<u32>),
    pub(super) cached_tokens: Option<u32>,
    /// The AI was called (successfully or not): counted in the day's usage.
    pub(super) ai_calls: u32,
    /// The AI was not asked because the tenant's monthly budget is spent.
    pub(super) budget_stop: bool,
    pub(super) pause: Option<i32>,
    pub(super) replies: Vec<PlannedReply>,
    /// A problem with the tenant's configuration this message ran into (flagged for the
    /// operator after the batch).
    pub(super) problem: Option<TenantProblem>,
    /// A transient failure the plan cannot answer around: the job is tried again, nothing
    /// is recorded.
    pub(super) retry: Option<String>,
    /// A voice note's transcript, logged as the incoming message's text.
    pub(super) transcript: Option<String>,
    pub(super) transcriptions: u32,
    pub(super) transcription_seconds: Option<u64>,
    pub(super) transcription_tokens: (Option<u32>, Option<u32>),
    /// A picture was shown to the chat model.
    pub(super) image_inputs: u32,
}

impl Plan {
    /// The business's own answer (FAQ or canned).
    fn answer(&mut self, entry: &EntryRecord) {
        let s = if entry.data_type == "canned" {
            Source::Canned
        } else {
            Source::Faq
        };
        self.matched = Some(entry.id);
        self.reply(s, entry.answer.clone());
    }

    fn reply(&mut self, source: Source, text: String) {
        self.source = Some(source);
        self.replies.push(PlannedReply {
            source: source.as_str(),
            text,
            to_customer: true,
        });
    }

    pub(super) fn record<'a>(
        &'a self,
        msg: &'a Incoming<'_>,
        begin: &Inbound,
        attempt: uuid::Uuid,
    ) -> RecordReplies<'a> {
        RecordReplies {
            wa_message_id: &msg.m.wa_message_id,
            attempt,
            user_id: begin.user_id,
            inbound_status: if self.silent.is_some() {
                "ignored"
            } else {
                "answered"
            },
            note: self.silent,
            reply_source: self.source.map(Source::as_str),
            matched_entry_id: self.matched,
            ai_prompt_tokens: self.usage.0,
            ai_completion_tokens: self.usage.1,
            ai_cached_tokens: self.cached_tokens,
            ai_calls: self.ai_calls,
            budget_stop: self.budget_stop,
            pause_minutes: self.pause,
            replies: &self.replies,
            transcript: self.transcript.as_deref(),
            transcriptions: self.transcriptions,
            transcription_seconds: self.transcription_seconds,
            transcription_input_tokens: self.transcription_tokens.0,
            transcription_output_tokens: self.transcription_tokens.1,
            image_inputs: self.image_inputs,
        }
    }
}
