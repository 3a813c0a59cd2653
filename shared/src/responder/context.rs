//! A tenant's context as the responder uses it: the stored record plus the FAQ index built
//! from it, cached per warm process for a short TTL.

use crate::faq::{FaqDoc, FaqIndex};
use crate::store::{EntryRecord, SettingsRecord, TenantContextRecord};

/// Everything needed to answer as one tenant, ready to use.
pub struct TenantContext {
    pub record: TenantContextRecord,
    pub settings: SettingsRecord,
    /// FAQ and canned entries only: what may be sent to a customer as it is.
    pub faq: FaqIndex,
    faq_entries: Vec<usize>,
    /// Every active entry: grounding for the AI.
    pub grounding: FaqIndex,
}

impl TenantContext {
    pub fn new(record: TenantContextRecord) -> Self {
        let settings = record.settings.clone().unwrap_or_default();
        let faq_entries: Vec<usize> = record
            .training
            .iter()
            .enumerate()
            .filter(|(_, e)| e.data_type == "faq" || e.data_type == "canned")
            .map(|(i, _)| i)
            .collect();
        fn doc(e: &EntryRecord) -> FaqDoc<'_> {
            FaqDoc {
                question: &e.question,
                answer: &e.answer,
                category: e.category.as_deref(),
                canned: e.data_type == "canned",
                priority: e.priority,
                phrasings: &e.phrasings,
            }
        }
        let faq = FaqIndex::build(faq_entries.iter().map(|&i| doc(&record.training[i])));
        let grounding = FaqIndex::build(record.training.iter().map(doc));
        Self {
            record,
            settings,
            faq,
            faq_entries,
            grounding,
        }
    }

    /// The confident FAQ/canned match for a message, if any.
    pub fn match_faq(&self, text: &str) -> Option<&EntryRecord> {
        self.faq
            .best_match(text)
            .map(|m| &self.record.training[self.faq_entries[m.index]])
    }

    /// The `k` entries most relevant to a message, for grounding the AI.
    pub fn grounding_for(&self, text: &str, k: usize) -> Vec<&EntryRecord> {
        self.grounding
            .rank(text, k)
            .into_iter()
            .map(|m| &self.record.training[m.index])
            .collect()
    }
}
