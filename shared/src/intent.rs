//! Control intents a customer can express in any message: stop, start, ask for a human.
//!
//! Stop and start change whether a customer gets messages at all, so they are strict: the
//! whole (short) message must be the command, give or take politeness words, so "the guitar
//! string stopped working" is not an unsubscribe. Asking for a person is looser: the request
//! may sit inside a longer message ("my order is late, let me talk to a human").

use crate::faq::normalize::normalize;

/// What a customer asked the platform (not the business) to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlIntent {
    /// Unsubscribe: send me nothing more.
    Stop,
    /// Re-subscribe after a stop.
    Start,
    /// Hand the conversation to a person.
    Human,
}

/// Longest message, in words, that can still be a stop or start command.
const MAX_COMMAND_WORDS: usize = 8;

/// Words that may surround a command without changing it ("stop please", "tafadhali acha").
const FILLER: &[&str] = &[
    "please",
    "pls",
    "plz",
    "kindly",
    "tafadhali",
    "now",
    "asap",
    "immediately",
    "sasa",
    "hivi",
    "thanks",
    "thank",
    "you",
    "asante",
    "ok",
    "okay",
    "sawa",
    "just",
    "bana",
    "bro",
    "i",
    "said",
    "nimesema",
    "jamani",
];

const STOP: &[&str] = &[
    "stop",
    "stopp",
    "stp",
    "unsubscribe",
    "unsub",
    "unsuscribe",
    "unsubcribe",
    "opt out",
    "optout",
    "quit",
    "end",
    "stop all",
    "stop it",
    "stop this",
    "stop messages",
    "stop messaging",
    "stop messaging me",
    "stop sending",
    "stop sending me",
    "stop sending messages",
    "stop sending me messages",
    "stop texting me",
    "stop spamming me",
    "stop spam",
    "remove me",
    "remove me from your list",
    "remove me from the list",
    "remove my number",
    "delete my number",
    "dont message me",
    "do not message me",
    "dont text me",
    "do not text me",
    "dont send me messages",
    "do not send me messages",
    "do not contact me",
    "dont contact me",
    "no more messages",
    "leave me alone",
    "i dont want messages",
    "not interested",
    "acha",
    "wacha",
    "achana na mimi",
    "niache",
    "niachie",
    "acha kunitumia",
    "acheni kunitumia",
    "acha kunitumia messages",
    "acha kunitumia meseji",
    "sitaki",
    "sitaki tena",
    "sitaki messages",
    "sitaki meseji",
    "sitaki jumbe",
    "sitaki ujumbe",
    "sitaki messages zenu",
    "sitaki meseji zenu",
    "niondoe",
    "nitoe",
    "niondolee",
    "niondoe kwa list",
    "niondoe kwenye list",
    "usinitumie",
    "usinitumie tena",
    "usinitumie messages",
    "usinitumie meseji",
    "msinitumie",
    "msinitumie tena",
    "msinitumie messages",
    "msinitumie meseji",
    "usiniandikie tena",
    "msiniandikie tena",
    "stop kunitumia",
    "stop kunitumia messages",
    "unsubscribe me",
    "i want to unsubscribe",
    "i want to stop",
    "stop subscription",
    "stop the subscription",
    "stop my subscription",
    "cancel subscription",
    "cancel my subscription",
    "i want to stop the subscription",
    "end subscription",
];

const START: &[&str] = &[
    "start",
    "strat",
    "subscribe",
    "resubscribe",
    "re subscribe",
    "unstop",
    "opt in",
    "optin",
    "start again",
    "subscribe again",
    "start messages",
    "start sending",
    "start sending again",
    "resume",
    "yes start",
    "anza",
    "anza tena",
    "anzeni",
    "anzeni tena",
    "rudisha",
    "nirudishe",
    "nirudisheni",
    "nirudishe kwa list",
    "rudisha messages",
    "nitumie tena",
    "mnitumie tena",
    "endelea kunitumia",
    "endeleeni kunitumia",
];

/// Phrases asking for a person, matched as consecutive words anywhere in the message.
const HUMAN: &[&str] = &[
    "human",
    "humans",
    "real person",
    "a person",
    "live person",
    "actual person",
    "live agent",
    "an agent",
    "agent",
    "customer care",
    "customer service",
    "customer support",
    "representative",
    "operator",
    "manager",
    "supervisor",
    "talk to someone",
    "speak to someone",
    "speak with someone",
    "talk with someone",
    "talk to somebody",
    "speak to somebody",
    "someone real",
    "call me",
    "call me back",
    "give me a call",
    "phone me",
    "ring me",
    "nipigie",
    "nipigieni",
    "nipigie simu",
    "mnipigie",
    "not a bot",
    "no bot",
    "stop the bot",
    "not a robot",
    "real human",
    "mtu halisi",
    "mtu wa kweli",
    "ongea na mtu",
    "kuongea na mtu",
    "niongee na mtu",
    "tuongee na mtu",
    "ongea na mhudumu",
    "niongee na mhudumu",
    "kuongea na mhudumu",
    "mhudumu",
    "ongea na mwenye",
    "niongee na mwenye",
    "ongea na boss",
    "niongee na boss",
    "nataka mtu",
    "niunganishe na mtu",
    "wahudumu",
    "ongea na manager",
    "niongee na manager",
    "mtu wa customer care",
];

/// The control intent a message expresses, if any.
pub fn detect_control_intent(text: &str) -> Option<ControlIntent> {
    let norm = normalize(text);
    let words: Vec<&str> = norm.split(' ').filter(|w| !w.is_empty()).collect();
    if words.is_empty() {
        return None;
    }
    if words.len() <= MAX_COMMAND_WORDS {
        let core: Vec<&str> = words
            .iter()
            .copied()
            .filter(|w| !FILLER.contains(w))
            .collect();
        let core = core.join(" ");
        if STOP.contains(&core.as_str()) {
            return Some(ControlIntent::Stop);
        }
        if START.contains(&core.as_str()) {
            return Some(ControlIntent::Start);
        }
    }
    let has_phrase = |p: &str| {
        let parts: Vec<&str> = p.split(' ').collect();
        words.windows(parts.len()).any(|w| w == parts.as_slice())
    };
    if HUMAN.iter().any(|p| has_phrase(p)) {
        return Some(ControlIntent::Human);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use ControlIntent::*;

    #[test]
    fn stop_alone_is_an_unsubscribe() {
        for m in [
            "STOP",
            "stop.",
            "Stop please",
            "unsubscribe",
            "Acha",
            "wacha bana",
            "sitaki tena",
            "Niondoe",
            "usinitumie tena",
        ] {
            assert_eq!(detect_control_intent(m), Some(Stop), "{m}");
        }
    }

    #[test]
    fn stop_inside_a_sentence_is_not_an_unsubscribe() {
        assert_eq!(
            detect_control_intent("the guitar string stopped working"),
            None
        );
        assert_eq!(
            detect_control_intent("which bus stop is near your shop?"),
            None
        );
        assert_eq!(
            detect_control_intent("sitaki guitar ya blue, nataka ya black"),
            None
        );
    }

    #[test]
    fn start_alone_is_a_resubscribe() {
        for m in [
            "START",
            "subscribe",
            "Anza",
            "rudisha",
            "start again please",
        ] {
            assert_eq!(detect_control_intent(m), Some(Start), "{m}");
        }
    }

    #[test]
    fn start_inside_a_sentence_is_not_a_resubscribe() {
        assert_eq!(
            detect_control_intent("when do the guitar lessons start?"),
            None
        );
    }

    #[test]
    fn asking_for_a_person_is_a_handover() {
        for m in [
            "I want to talk to a human",
            "can I speak to someone please",
            "call me on 0712345678",
            "nataka kuongea na mtu",
            "niongee na mtu tafadhali",
            "customer care",
            "Let me talk to the manager",
        ] {
            assert_eq!(detect_control_intent(m), Some(Human), "{m}");
        }
    }

    #[test]
    fn an_ordinary_question_has_no_control_intent() {
        assert_eq!(detect_control_intent("What time do you open?"), None);
        assert_eq!(detect_control_intent(""), None);
    }
}
