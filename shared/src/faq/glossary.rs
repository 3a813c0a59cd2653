//! General Swahili and Sheng vocabulary with its English meaning, Swahili word forms, and the
//! common words of both languages that say little about a question's topic.
//!
//! Most tenants write their FAQ in English while customers write in Swahili, Sheng or a mix.
//! The concept lexicon covers topics every business shares (hours, price, delivery); this
//! glossary covers the rest of everyday vocabulary (room, farm, exam, cow, lake...), so a
//! Swahili word meets the tenant's own English word without a lexicon entry per business.
//! Swahili words are found through their forms: subject, tense, negation and object prefixes
//! (`ni-ta-ku-`), verb extensions (passive `-wa`, applicative `-ia`/`-ea`, subjunctive `-e`),
//! the locative `-ni` (`shambani`) and relative `-yo`/`-zo` (`mnayo`).

use std::collections::HashMap;
use std::sync::OnceLock;

/// `swahili|sheng word: english words` — everyday vocabulary, not any one business's.
const GLOSSARY: &str = r#"
chumba: room; vyumba: rooms; keja: house room; kitanda: bed; vitanda: beds; godoro: mattress
nyumba: house; nyumbani: home house; ocha: home village upcountry; kijiji: village
shamba: farm; mashamba: farms; mkulima: farmer; wakulima: farmers; kilimo: farming agriculture
mbolea: fertilizer manure; mbegu: seed seeds; miche: seedlings; mahindi: maize corn; maharagwe: beans
nyanya: tomato tomatoes; viazi: potatoes; mboga: vegetables; sukuma: kale; mchele: rice; unga: flour
ngombe: cow cattle dairy; ng'ombe: cow cattle dairy; ndama: calf; fahali: bull; mbuzi: goat goats
kondoo: sheep; kuku: chicken chickens poultry; vifaranga: chicks; kifaranga: chick; nguruwe: pig pigs
mayai: eggs; yai: egg; maziwa: milk dairy; nyama: meat; samaki: fish; chakula: food feed feeds meal
minyoo: worms deworming dewormer; kupe: ticks; wadudu: pests insects; viwavi: worms caterpillars pests
daktari: doctor vet; mgonjwa: sick patient; ugonjwa: disease illness; ugua: sick ill; mgonja: sick
mtihani: test exam; mitihani: tests exams; leseni: license licence; cheti: certificate
kozi: course; darasa: class; mwalimu: teacher instructor; walimu: teachers instructors
mwanafunzi: student; wanafunzi: students; soma: study learn read; somea: study learn; jifunza: learn
endesha: drive driving ride; dereva: driver; madereva: drivers; gari: car vehicle; magari: cars vehicles
ndai: car; dinga: car; moti: car; piki: motorbike motorcycle; basi: bus; lori: lorry truck
barabara: road; njia: road way route; kituo: station stage; stage: stage
andikisha: register enroll enrol registration; jiandikisha: register enroll enrol; sajili: register
kitambaa: fabric cloth material; vitambaa: fabrics; kitenge: kitenge fabric; vitenge: kitenge fabric
suti: suit suits; suruali: trousers; shati: shirt; gauni: dress gown; rinda: dress; koti: coat jacket
wanaume: men; mwanaume: man; wanawake: women; mwanamke: woman; msichana: girl; mvulana: boy
mtoto: child kid baby; watoto: children kids; msupa: girl girlfriend; dem: girl
vipimo: measurements measure; pima: measure test; kipimo: measurement
shona: sew tailor; shonea: sew tailor; punguza: reduce shorten adjust alter; refusha: lengthen alter
badilisha: change alter exchange; rekebisha: repair adjust alter fix
ndefu: long; mrefu: long tall; fupi: short; kubwa: big large; ndogo: small little; mpya: new
tayari: ready; haraka: urgent fast express quick; salama: safe secure
bwawa: pool dam; ogelea: swim swimming; ziwa: lake; boti: boat; mashua: boat; kisiwa: island
safari: trip tour journey; matembezi: walk tour trip; tembea: walk visit; tembelea: visit
usiku: night; mchana: day afternoon; siku: day days; wiki: week weeks; mwezi: month; mwaka: year
jana: yesterday; leo: today; kesho: tomorrow
ingia: enter check checkin; toka: leave checkout exit; lala: sleep stay night; kaa: stay
hifadhi: reserve book booking; panga: arrange plan organise organize; pangia: arrange plan organise
sherehe: party event celebration; harusi: wedding; mkutano: meeting conference
kadi: card; malipo: payment; lipa: pay; pesa: money; doh: money; ganji: money; mullah: money
munde: money; soo: hundred; thao: thousand; mia: hundred; elfu: thousand; awali: deposit advance first
rudishiwa: refund refunded; rudisha: return refund; rudi: return back
pokea: accept receive; kubali: accept; peana: give offer; pata: get find
mahitaji: requirements needs; lazima: must required
msaada: help; saidia: help assist; shida: problem issue; ngori: problem trouble; tatizo: problem
ofisi: office; duka: shop store; dukani: shop store; soko: market; mji: town
mna: have; tuna: have; una: have; mnayo: have; mnazo: have; nazo: have; nayo: have
tumia: use; tumiwa: use; kam: come; kuja: come; fika: arrive reach get; chukua: take collect; beba: carry pick
ita: call; piga: call; tuma: send; leta: bring deliver; peleka: take deliver
dawa: medicine drug chemical spray; nyunyizia: spray; mti: tree; miti: trees; majani: leaves grass
udongo: soil; mchanga: sand soil; maji: water; mvua: rain rains
picha: picture photo pictures photos; sampuli: sample samples
nafasi: space slot vacancy chance; jiunga: join register; dai: want; cheki: check see; nauli: fare
meno: teeth; jino: tooth; macho: eyes eye; sikio: ear; mguu: leg foot; mkono: hand arm; kichwa: head
tumbo: stomach; ngozi: skin; damu: blood; mwili: body; uso: face; kofia: hat cap; mkoba: bag; begi: bag
sukari: sugar; chumvi: salt; makaa: charcoal; mafuta: oil fuel; kompyuta: computer; runinga: tv television; taa: light lamp
stima: electricity power; umeme: electricity power; karatasi: paper; mlango: door; dirisha: window
mazoezi: exercise training workout; michezo: sports games; mgeni: guest visitor; wageni: guests visitors
mteja: customer client; wateja: customers clients; bidhaa: products goods; ratiba: schedule timetable
tiketi: ticket tickets; kiingilio: entry fee entrance; ukubwa: size
mbogi: group friends; kundi: group; chama: group
navyo: have; nacho: have; mnacho: have; mnavyo: have
taka: want; weza: can; eza: can; jua: know; pata: get; penda: like; omba: please; hitaji: need
ambia: tell; uliza: ask; ona: see; enda: go; kwenda: go; anza: start begin; maliza: finish
agiza: order buy; shika: get buy; gharimu: cost; isha: finish end
wazi: open; mtaa: area estate neighbourhood; dharura: emergency urgent
kanisa: church; shule: school; hospitali: hospital; hoteli: hotel; mgahawa: restaurant
"#;

/// Everyday words (English and Swahili) that rarely say what a question is about. When the
/// tenant's entries do not use one, it counts for little in either direction.
const COMMON: &str = "
bring take took use using used make made start starting begin finish finished end keep put
look looking think try leave stay possible exactly actually sure simple extra own other
different same next last first little big small nice lovely good great fine best better
someone somebody anyone anybody everyone person people anything everything nothing
info information detail details thing things way kind please kindly regards
far long short enough around already soon yet ever never always usually often
would could should might must may shall will can
able allowed want wanted wish like love need needed needs
come came going went get getting got give given gave
ask asked tell told say said know knew mean means
today tonight also too just only still even really very quite
hapo sasa hivi tu pia kabisa kweli hasa sana zaidi kidogo nzuri poa fiti
mimi wewe yeye sisi nyinyi wao yetu yenu yao yangu yako yake
huyo hiyo hicho hilo hao hizo hayo ile ule yule kile lile
kitu vitu mtu watu yeyote kila
moja mmoja mbili wawili tatu watatu nne wanne tano watano sita saba nane tisa kumi
one two three four five six seven eight nine ten
";

/// Frequent English words customers write that are no typo of anything, whatever a tenant's
/// vocabulary holds: "after" is not "alter", "night" not "tight", "paining" not "paint".
const ENGLISH: &str = "
after again against along already although always among another answer anyone anything anyway
anywhere around asked away badly because become before begin behind being below beside better
between beyond birth black bring brought build built buyer called cannot carry cause certain
chance cheaper child choose chose clear coming could couple daily doing double doubt dozen during
early earlier either elder empty enough entire especially evening every exact example family
father feeling fever field final first floor follow found friend front further given going great
green group guess happy happen heard heavy hello however hurts hurting husband idea inside instead
issue items itself large later latest learn least leave level light little local longer looking
lower maybe means meant might minor money month months morning mother mouth moving myself nearby
nearest needed never night nights noise normal north nothing number often older order other others
outside owner pain paining painful paper parent parents party people period person piece place
places plain please point pretty prior private problem proper quick quite rather ready reason
receive recent regular remain right round second seems sense seven several share short shower
showers since single sister smaller someone something sometimes sorry south speak special spend
staff stand start still story straight strong stuff sugar summer thank their there these thing
think third those though three through today together tomorrow tonight total touch towards travel
trouble trust twice under until upon usual usually value visit voice waiting walk wanted watch water
weekly welcome where whether which while white whole whose within without woman women world worry
worse worth would write wrong years yellow young yourself tight paint alter
";

struct Tables {
    glossary: HashMap<&'static str, Vec<&'static str>>,
    common: std::collections::HashSet<&'static str>,
    /// English words: [`ENGLISH`], the common words and every English meaning in the glossary.
    english: std::collections::HashSet<&'static str>,
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let mut glossary = HashMap::new();
        for item in GLOSSARY
            .split(['\n', ';'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let (sw, en) = item.split_once(':').expect("glossary item has a colon");
            let sw = sw.trim().trim_matches('\'');
            glossary.insert(sw, en.split_whitespace().collect());
        }
        let common: std::collections::HashSet<&'static str> = COMMON.split_whitespace().collect();
        let english = ENGLISH
            .split_whitespace()
            .chain(common.iter().copied())
            .chain(glossary.values().flatten().copied())
            .collect();
        Tables {
            glossary,
            common,
            english,
        }
    })
}

/// Whether a word is an everyday word that says little about the question's topic.
pub(crate) fn is_common(w: &str) -> bool {
    tables().common.contains(w)
}

/// Whether a word is a frequent English word, never to be read as a typo of another.
pub(crate) fn is_english(w: &str) -> bool {
    tables().english.contains(w)
}

/// The English meaning of a Swahili or Sheng word as written, without reading its forms.
pub(crate) fn english_as_written(w: &str) -> Option<&'static [&'static str]> {
    tables().glossary.get(w).map(|v| v.as_slice())
}

/// The English meaning of a Swahili or Sheng word, found as written or through its forms.
pub(crate) fn english(w: &str) -> Option<&'static [&'static str]> {
    let t = tables();
    let mut found = None;
    for_each_root(w, |r| {
        if found.is_none() {
            found = t.glossary.get(r).map(|v| v.as_slice());
        }
        found.is_some()
    });
    found
}

/// Subject and negative markers a Swahili verb starts with.
const SUBJECT: &[&str] = &[
    "hatu", "hawa", "hamu", "ham", "hai", "hau", "hazi", "havi", "haku", "hali", "si", "ni", "tu",
    "wa", "mu", "m", "u", "a", "i", "zi", "vi", "ki", "li", "ya", "ku", "ha",
];
/// Tense, aspect and mood markers after the subject.
const TENSE: &[&str] = &[
    "na", "li", "ta", "me", "ki", "ja", "nge", "ngali", "hu", "sha",
];
/// Object (and reflexive) markers before the root.
const OBJECT: &[&str] = &[
    "ni", "ku", "tu", "wa", "mw", "m", "ki", "vi", "zi", "li", "ji", "i", "u", "ya",
];

/// Calls `f` with `w` and every root its Swahili prefixes and suffixes leave, until `f`
/// returns true. Roots shorter than three letters are not tried.
pub(crate) fn for_each_root(w: &str, mut f: impl FnMut(&str) -> bool) -> bool {
    if !w.is_ascii() {
        return f(w);
    }
    let mut buf = String::new();
    let mut try_root = |r: &str, f: &mut dyn FnMut(&str) -> bool| -> bool {
        if r.len() < 3 {
            return false;
        }
        if f(r) {
            return true;
        }
        for_each_ending(r, &mut buf, f)
    };
    if f(w) {
        return true;
    }
    // A short word with no prefix is more likely English ("tune") than a Swahili form.
    if w.len() >= 6 && for_each_ending(w, &mut String::new(), &mut f) {
        return true;
    }
    // "ku-" infinitive, then subject, tense and object markers in that order, each optional.
    for s in SUBJECT.iter().copied().chain(std::iter::once("")) {
        let Some(after_s) = w.strip_prefix(s) else {
            continue;
        };
        for t in TENSE.iter().copied().chain(std::iter::once("")) {
            let Some(after_t) = after_s.strip_prefix(t) else {
                continue;
            };
            for o in OBJECT.iter().copied().chain(std::iter::once("")) {
                let Some(root) = after_t.strip_prefix(o) else {
                    continue;
                };
                if root.len() == w.len() {
                    continue;
                }
                if try_root(root, &mut f) {
                    return true;
                }
            }
        }
    }
    false
}

/// Verb extensions and noun suffixes back to the dictionary form.
fn for_each_ending(r: &str, buf: &mut String, f: &mut dyn FnMut(&str) -> bool) -> bool {
    let n = r.len();
    let mut alt = |stem: &str, add: &str, buf: &mut String| -> bool {
        if stem.len() + add.len() < 3 {
            return false;
        }
        buf.clear();
        buf.push_str(stem);
        buf.push_str(add);
        let s = std::mem::take(buf);
        let hit = f(&s);
        *buf = s;
        hit
    };
    // Locative and plural "-ni" (shambani, asanteni), relative "-yo/-zo/-cho/-lo" (mnayo).
    for suffix in ["ni", "yo", "zo", "cho", "lo", "vyo", "po", "ko"] {
        if let Some(stem) = r.strip_suffix(suffix) {
            if alt(stem, "", buf) {
                return true;
            }
        }
    }
    // Passive, applicative, stative: fanywa, somea, punguzia, rudishiwa → fanya, soma...
    for (suffix, add) in [
        ("iwa", "a"),
        ("ewa", "a"),
        ("wa", "a"),
        ("ia", "a"),
        ("ea", "a"),
        ("ika", "a"),
        ("eka", "a"),
        ("ana", "a"),
    ] {
        if n > suffix.len() + 2 {
            if let Some(stem) = r.strip_suffix(suffix) {
                if alt(stem, add, buf) {
                    return true;
                }
                if alt(stem, "", buf) {
                    return true;
                }
            }
        }
    }
    // Subjunctive "-e": nimalize, nilipe → maliza, lipa.
    if let Some(stem) = r.strip_suffix('e') {
        if alt(stem, "a", buf) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swahili_words_find_their_english_meaning_through_their_forms() {
        assert_eq!(english("chumba"), Some(&["room"][..]));
        assert_eq!(english("shambani"), Some(&["farm"][..]));
        assert_eq!(english("kujiandikisha").map(|e| e[0]), Some("register"));
        assert_eq!(english("nitarudishiwa").map(|e| e[0]), Some("refund"));
        assert_eq!(english("kusomea").map(|e| e[0]), Some("study"));
        assert_eq!(english("tukikam"), Some(&["come"][..]));
        assert_eq!(english("guitar"), None);
    }

    #[test]
    fn everyday_words_are_common() {
        assert!(is_common("someone"));
        assert!(is_common("exactly"));
        assert!(!is_common("fertilizer"));
    }
}
