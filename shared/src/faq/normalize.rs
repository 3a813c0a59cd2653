//! Text normalisation for WhatsApp messages: case and accent folding, punctuation and emoji removal, shorthand expansion and light stemming.

use std::borrow::Cow;

/// Lowercases, folds accents, joins words split by apostrophes or hyphens
/// ("don't", "m-pesa", "wi-fi") and turns every other non-alphanumeric
/// character, emoji included, into a space.
pub fn normalize_into(text: &str, out: &mut String) {
    out.clear();
    out.reserve(text.len() + 1);
    let mut prev_alnum = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() {
            for lc in c.to_lowercase() {
                match fold_accent(lc) {
                    Some(s) => out.push_str(s),
                    None => out.push(lc),
                }
            }
            prev_alnum = true;
        } else if matches!(
            c,
            '\'' | '\u{2019}' | '\u{2018}' | '-' | '\u{2010}' | '\u{2011}'
        ) && prev_alnum
            && chars.peek().is_some_and(|n| n.is_alphanumeric())
        {
            // Code-switching hyphenates a Swahili verb prefix onto an English word
            // ("ku-enroll", "nime-cancel", "tuta-book"): the English word is what counts.
            let word_start = out.rfind(' ').map_or(0, |i| i + 1);
            if c != '\''
                && c != '\u{2019}'
                && c != '\u{2018}'
                && is_hyphen_prefix(&out[word_start..])
            {
                out.truncate(word_start);
            }
            // Joining keeps "m-pesa" and "mpesa" (and "what's"/"whats") the same word.
            prev_alnum = false;
        } else {
            if !out.ends_with(' ') && !out.is_empty() {
                out.push(' ');
            }
            prev_alnum = false;
        }
    }
    while out.ends_with(' ') {
        out.pop();
    }
}

/// Swahili subject, tense and infinitive prefixes that Sheng hyphenates onto English verbs.
/// "m" is left out: "m-pesa" is a word of its own.
fn is_hyphen_prefix(w: &str) -> bool {
    matches!(
        w,
        "ku" | "kuni"
            | "kutu"
            | "kumu"
            | "ni"
            | "nime"
            | "nita"
            | "nili"
            | "nika"
            | "niki"
            | "tume"
            | "tuta"
            | "tuli"
            | "tuka"
            | "tuki"
            | "ume"
            | "uta"
            | "uli"
            | "uki"
            | "ame"
            | "ata"
            | "ali"
            | "ime"
            | "ita"
            | "ili"
            | "iki"
            | "mna"
            | "mme"
            | "mta"
            | "mli"
            | "mki"
            | "wana"
            | "wame"
            | "wata"
            | "wali"
            | "una"
            | "ana"
            | "ina"
            | "tuna"
            | "nina"
            | "sija"
            | "haija"
            | "hai"
            | "si"
            | "hu"
            | "mnaweza"
            | "naweza"
            | "naeza"
            | "mnaeza"
            | "tunaweza"
            | "unaweza"
            | "tuku"
            | "nikiwa"
    )
}

/// Convenience wrapper around [`normalize_into`].
pub fn normalize(text: &str) -> String {
    let mut s = String::new();
    normalize_into(text, &mut s);
    s
}

fn fold_accent(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'ç' | 'ć' | 'č' => "c",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => "e",
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' => "i",
        'ñ' | 'ń' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => "u",
        'ý' | 'ÿ' => "y",
        'ß' => "ss",
        'ś' | 'š' => "s",
        'ź' | 'ż' | 'ž' => "z",
        'ł' => "l",
        'æ' => "ae",
        'œ' => "oe",
        _ => return None,
    })
}

/// WhatsApp shorthand and frequent misspellings, mapped to the words they stand for.
/// Applied to whole tokens only, so "u" is rewritten but "u" inside "unaweza" is not.
pub(crate) fn shorthand(tok: &str) -> Option<&'static str> {
    Some(match tok {
        "u" | "yu" | "yuo" | "yous" => "you",
        "ur" | "yr" | "yor" | "youre" => "your",
        "r" => "are",
        "wat" | "wht" | "wot" | "whats" | "wats" | "wt" | "whta" => "what",
        "tym" | "tyme" | "tim" | "tme" => "time",
        "hw" | "hoe" => "how",
        "hwmuch" | "howmuch" | "hwmch" => "how much",
        "mch" | "mutch" | "muc" => "much",
        "pls" | "plz" | "plse" | "pliz" | "plis" | "plez" | "pleas" | "pleasee" | "pleeze" => {
            "please"
        }
        "2day" | "tdy" | "tody" => "today",
        "2moro" | "2morrow" | "2mrw" | "tmrw" | "tmr" | "tomoro" | "tommorow" | "tomorow"
        | "tmoro" => "tomorrow",
        "2nite" | "2night" | "tonite" => "tonight",
        "thx" | "thnx" | "thanx" | "tnx" | "thks" | "tx" | "thanz" | "tenks" | "tnks"
        | "thankz" => "thanks",
        "ty" | "tq" | "thnku" | "thanku" | "thankyu" | "thanq" => "thank you",
        "hv" | "hav" | "hve" => "have",
        "wen" | "wn" | "whn" => "when",
        "whr" | "wer" | "wea" | "whre" | "wher" | "wre" => "where",
        "cn" | "kan" => "can",
        "d" | "da" | "de" | "teh" => "the",
        "ma" | "mah" => "my",
        "y" => "why",
        "4" => "for",
        "2" => "to",
        "n" | "nd" | "&" => "and",
        "gd" => "good",
        "mrng" | "mornin" | "morn" => "morning",
        "nyt" | "nite" => "night",
        "ppl" | "pple" => "people",
        "msg" => "message",
        "addr" | "adrs" | "adress" | "addres" | "addrs" => "address",
        "loc" | "locn" => "location",
        "bt" => "but",
        "coz" | "cz" | "bcoz" | "bcz" | "cos" => "because",
        "im" => "i am",
        "iam" => "i am",
        "dont" | "dnt" => "do not",
        "cant" | "cnt" => "can not",
        "wont" => "will not",
        "ok" | "okay" | "k" | "kk" | "okey" | "sawa" | "poa" => "ok",
        "hrs" | "hr" => "hours",
        "opn" | "opne" => "open",
        "clse" | "clsd" => "closed",
        "pwr" => "power",
        "alot" => "a lot",
        "prc" | "prce" => "price",
        "amt" => "amount",
        "kgs" => "kg",
        "mins" | "min" => "minutes",
        "abt" | "bout" => "about",
        "b4" | "bfr" | "bfo" => "before",
        "nid" | "nead" | "nedd" => "need",
        "cm" | "kum" => "come",
        "pic" | "pik" | "pix" => "picture",
        "pics" | "piks" => "pictures",
        "bk" => "book",
        "chk" | "chek" => "check",
        "gud" => "good",
        "wud" => "would",
        "cud" => "could",
        "shud" => "should",
        "lyk" => "like",
        "luv" => "love",
        "dat" => "that",
        "dis" => "this",
        "der" | "dere" => "there",
        "gv" => "give",
        "knw" | "kno" => "know",
        "asap" => "urgently",
        "wanna" => "want to",
        "gonna" => "going to",
        "gimme" => "give me",
        "xpensive" => "expensive",
        "dlvr" | "dlv" | "delv" => "deliver",
        "dlvry" | "delvry" => "delivery",
        "mpessa" | "mpsa" | "mpeza" | "empesa" | "mpes" => "mpesa",
        "acc" | "acct" => "account",
        "avail" | "avl" => "available",
        "qty" => "quantity",
        "pc" | "pcs" => "pieces",
        "nxt" => "next",
        "wk" => "week",
        "wkend" | "wknd" | "weekends" => "weekend",
        "sat" => "saturday",
        "sun" => "sunday",
        "frm" | "fr" => "from",
        "wth" | "wit" | "wiv" => "with",
        "inf" | "info" => "information",
        "hallo" | "helo" | "hellow" | "hellp" | "heloo" | "hellooo" | "helloo" => "hello",
        "hey" | "heey" | "hiii" | "hy" => "hi",
        "av" | "hev" => "have",
        "dey" => "they",
        "nw" => "now",
        "cum" => "come",
        "gt" => "get",
        "wil" => "will",
        "ryt" | "rite" => "right",
        "fone" | "phn" | "fon" => "phone",
        "numba" | "nambo" | "nmba" => "number",
        "evng" | "evenin" | "eve" => "evening",
        "aftanun" | "afternun" | "aftn" => "afternoon",
        "mon" => "monday",
        "tue" | "tues" => "tuesday",
        "wed" => "wednesday",
        "thu" | "thur" | "thurs" => "thursday",
        "fri" => "friday",
        "xmas" | "krismasi" => "christmas",
        "bookin" => "booking",
        "deliva" | "delivr" | "delivar" => "deliver",
        "payed" => "paid",
        "niajee" | "nyaje" | "niajeh" => "niaje",
        "mambooo" | "mamboo" => "mambo",
        "asnte" | "asanteh" | "asantee" | "ahsante" | "asanti" => "asante",
        "naeza" | "nawezaje" | "naezaje" => "naweza",
        "mnaeza" => "mnaweza",
        "whatsapp" | "watsap" | "whatsap" | "watsapp" | "wasap" => "whatsapp",
        _ => return None,
    })
}

/// Light suffix stripping so that "guitars", "delivering" and "located"
/// meet "guitar", "deliver" and "locate" half way. It only needs to be consistent,
/// since entries and queries go through the same function.
pub(crate) fn stem(w: &str) -> Cow<'_, str> {
    let n = w.len();
    if n <= 3 || !w.is_ascii() {
        return Cow::Borrowed(w);
    }
    // Derived forms meet their base: "requirements"/"required", "urgently"/"urgent",
    // "drivers"/"drive", "organise"/"organize".
    for (suffix, min_rest) in [("ments", 5), ("ment", 5), ("ly", 5), ("ers", 4), ("er", 4)] {
        if let Some(rest) = w.strip_suffix(suffix) {
            if rest.len() >= min_rest && !rest.ends_with(['a', 'e', 'i', 'o', 'u']) {
                return Cow::Owned(stem(rest).into_owned());
            }
        }
    }
    for (suffix, to) in [
        ("ise", "ize"),
        ("ised", "ized"),
        ("ising", "izing"),
        ("our", "or"),
    ] {
        if let Some(rest) = w.strip_suffix(suffix) {
            if rest.len() >= 3 {
                let mut s = String::with_capacity(n);
                s.push_str(rest);
                s.push_str(to);
                return Cow::Owned(stem(&s).into_owned());
            }
        }
    }
    if n > 4 && w.ends_with("ies") {
        let mut s = String::with_capacity(n);
        s.push_str(&w[..n - 3]);
        s.push('y');
        return Cow::Owned(s);
    }
    if n > 5 && w.ends_with("ing") {
        return Cow::Borrowed(trim_double(&w[..n - 3]));
    }
    if n > 4 && w.ends_with("ed") && !w.ends_with("eed") {
        let base = &w[..n - 2];
        return Cow::Borrowed(trim_double(base));
    }
    if n > 4
        && (w.ends_with("ches") || w.ends_with("shes") || w.ends_with("sses") || w.ends_with("xes"))
    {
        return Cow::Borrowed(&w[..n - 2]);
    }
    if w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is") {
        // "engines" and "engine" must meet: drop the final "e" the singular would lose too.
        let base = &w[..n - 1];
        if n - 1 > 4 && base.ends_with('e') {
            return Cow::Borrowed(&base[..n - 2]);
        }
        return Cow::Borrowed(base);
    }
    if n > 4 && w.ends_with('e') {
        // "locate"/"located" and "serve"/"served" end up the same.
        return Cow::Borrowed(&w[..n - 1]);
    }
    Cow::Borrowed(w)
}

fn trim_double(b: &str) -> &str {
    let bytes = b.as_bytes();
    let n = bytes.len();
    if n >= 3 && bytes[n - 1] == bytes[n - 2] && !matches!(bytes[n - 1], b'l' | b's' | b'z') {
        return &b[..n - 1];
    }
    b
}

/// Swahili verb prefixes (subject, tense, infinitive and object markers), longest first.
/// "mnafungua" → "fungua", "kunitumia" → "nitumia" → "tumia", "imeharibika" → "haribika".
pub(crate) const SW_PREFIXES: &[&str] = &[
    "mnaweza",
    "tunaweza",
    "unaweza",
    "naweza",
    "mnaeza",
    "naeza",
    "mngeweza",
    "ningeweza",
    "nitaweza",
    "tutaweza",
    "inawezekana",
    "mnapenda",
    "mngependa",
    "tuna",
    "wana",
    "nina",
    "mna",
    "una",
    "ana",
    "ina",
    "tuta",
    "wata",
    "nita",
    "mta",
    "uta",
    "ata",
    "ita",
    "tume",
    "wame",
    "nime",
    "mme",
    "ume",
    "ame",
    "ime",
    "tuli",
    "wali",
    "nili",
    "mli",
    "uli",
    "ali",
    "ili",
    "hatu",
    "haku",
    "hawa",
    "hazi",
    "havi",
    "ham",
    "hai",
    "hau",
    "hu",
    "ku",
    "ni",
    "tu",
    "wa",
    "mu",
    "m",
    "u",
    "a",
    "i",
    "si",
    "ki",
    "vi",
    "zi",
    "li",
];

/// Words that carry no topic in either language. Kept separate from the concept lexicon
/// so they never count against a match.
pub(crate) fn is_stopword(w: &str) -> bool {
    matches!(
        w,
        "a" | "an" | "the" | "is" | "are" | "am" | "be" | "been" | "being" | "was" | "were" | "do" | "does"
            | "did" | "doing" | "you" | "your" | "yours" | "yourselves" | "i" | "me" | "my" | "mine" | "we"
            | "our" | "ours" | "us" | "it" | "its" | "this" | "that" | "these" | "those" | "to" | "of" | "in"
            | "on" | "at" | "for" | "with" | "and" | "or" | "can" | "could" | "would" | "will" | "shall"
            | "should" | "may" | "might" | "must" | "please" | "there" | "here" | "any" | "some" | "get"
            | "got" | "want" | "wanted" | "need" | "needs" | "like" | "just" | "also" | "so" | "if"
            | "what" | "which" | "who" | "whom" | "how" | "why" | "ok" | "about" | "from" | "by" | "as"
            | "up" | "out" | "into" | "over" | "then" | "than" | "too" | "very" | "really" | "much"
            | "many" | "more" | "most" | "one" | "ones" | "all" | "each" | "every" | "no" | "not" | "yes"
            | "yeah" | "he" | "she" | "him" | "her" | "they" | "them" | "their" | "theirs" | "let"
            | "know" | "tell" | "kindly" | "dear" | "sir" | "madam" | "maam" | "bro" | "bruh" | "sis"
            | "boss" | "mkubwa" | "bana" | "buda" | "msee" | "fam" | "guys" | "guy" | "lot" | "lots"
            | "thing" | "things" | "stuff" | "something" | "anything" | "else" | "still" | "even"
            | "now" | "currently" | "go" | "going" | "make" | "im" | "ill" | "id" | "ive"
            | "youre" | "theres" | "is there" | "would like" | "wish" | "hope" | "plus"
            | "but" | "because" | "since" | "again" | "well" | "only" | "same" | "other" | "another"
            | "way" | "ways" | "kind" | "type" | "types" | "sort" | "give" | "find" | "see" | "show"
            | "send me" | "okay" | "hmm" | "eh" | "ah" | "oh" | "yo" | "say" | "ask" | "asking" | "question"
            | "quick" | "help" | "assist" | "per" | "his" | "hers" | "after" | "during" | "while"
            | "through" | "upon" | "whose"
            // Capacity ("a 200 seater tent", "14-seater"): how big, not what
            | "seater" | "seaters"
            // Swahili / Sheng function words
            | "ya" | "na" | "ni" | "za" | "wa" | "la" | "kwa" | "cha" | "vya" | "kama" | "tu" | "je"
            | "hii" | "hiyo" | "hizi" | "hizo" | "huyu" | "yangu" | "yako" | "yenu" | "lenu" | "wenu"
            | "zenu" | "chenu" | "kwenu" | "lako" | "langu" | "wangu" | "wako" | "zangu" | "zako" | "mimi"
            | "sisi" | "nyinyi" | "wewe" | "yeye" | "pia" | "sana" | "ama" | "au" | "juu" | "gani" | "nini"
            | "aje" | "vipi" | "mko" | "iko" | "uko" | "kuna" | "ziko" | "ziko na" | "mpo" | "ipo" | "niko"
            | "tuko" | "nataka" | "tunataka" | "ningependa" | "naomba" | "tafadhali" | "naweza" | "mnaweza"
            | "unaweza" | "tunaweza" | "inawezekana" | "fanya" | "kufanya" | "mnafanya" | "kitu" | "vitu"
            | "hapo" | "hapa" | "huko" | "kule" | "ile" | "hiki" | "hicho" | "wale" | "hao" | "kwani"
            | "lakini" | "halafu" | "alafu" | "pale" | "pa" | "ka" | "si" | "sio" | "ndio" | "ndiyo"
            | "ata" | "hata" | "tena" | "mpaka" | "hadi" | "kwa nini" | "nani" | "yao" | "wao"
            | "zake" | "yake" | "lake" | "kwake" | "yote" | "zote" | "wote" | "moja" | "kuhusu" | "maze"
            | "mazee" | "manze" | "bazu" | "kaka" | "dada" | "rafiki" | "jo" | "ju" | "coz" | "aki"
            | "ebu" | "hebu" | "thats" | "liko" | "yuko" | "kiko" | "viko" | "chukua" | "mali" | "nipe" | "nipeni"
            | "basi" | "sawa" | "fiti" | "poa" | "ok sawa"
            | "mi" | "ila" | "tangu" | "kitambo" | "bado" | "kwanza" | "mingi"
            | "nyingi" | "wengi" | "kuwa" | "kwenye" | "ili" | "ndo" | "sina" | "hatuna"
            | "yetu" | "wetu" | "letu" | "chetu" | "vyetu" | "zetu" | "changu" | "vyangu" | "chako"
            | "vyako" | "vyenu" | "kwangu"
            | "kwetu" | "kwao" | "nyie" | "ivi" | "hivi" | "hivyo" | "vile" | "ivo" | "labda" | "kweli" | "hamna" | "hakuna"
            | "pekee" | "peke" | "mbona" | "samahani" | "sorry" | "excuse" | "pole" | "mob" | "wasee" | "wadau" | "mdau" | "mabro" | "bradhe" | "siwezi" | "hatuwezi" | "hawezi" | "haiwezekani" | "sitaweza" | "hutaweza"
            // Forms of address
            | "mama" | "mami" | "mathe" | "auntie" | "aunty" | "uncle" | "mzee" | "bwana" | "chief"
            | "brathe" | "mkuu" | "mrembo" | "ndugu" | "madame" | "mister" | "mr" | "mrs" | "ms"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punctuation_emoji_and_case_are_removed() {
        assert_eq!(normalize("Hi!! 😀 What's the PRICE?"), "hi whats the price");
    }

    #[test]
    fn hyphenated_brand_names_become_one_word() {
        assert_eq!(normalize("M-Pesa or Wi-Fi"), "mpesa or wifi");
    }

    #[test]
    fn a_hyphenated_swahili_prefix_leaves_the_english_word() {
        assert_eq!(
            normalize("Nataka ku-enroll, nime-cancel"),
            "nataka enroll cancel"
        );
    }

    #[test]
    fn accents_are_folded() {
        assert_eq!(normalize("Café Señor"), "cafe senor");
    }

    #[test]
    fn plurals_and_participles_share_a_stem() {
        assert_eq!(stem("guitars"), stem("guitar"));
        assert_eq!(stem("engines"), stem("engine"));
        assert_eq!(stem("phones"), stem("phone"));
        assert_eq!(stem("cakes"), stem("cake"));
        assert_eq!(stem("located"), stem("locate"));
        assert_eq!(stem("deliveries"), "delivery");
    }
}
