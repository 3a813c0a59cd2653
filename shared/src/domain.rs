//! The platform's domain types: parsed once at the edge, trusted everywhere after.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// Why a value from outside was refused. The text names the field and the rule, never the value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {rule}")]
pub struct InvalidValue {
    pub field: &'static str,
    pub rule: &'static str,
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self).map_err(|_| InvalidValue {
                    field: stringify!($name),
                    rule: "must be a UUID",
                })
            }
        }
    };
}

uuid_id!(
    /// A business on the platform (`alphadome.bot_tenants.id`).
    TenantId
);
uuid_id!(
    /// The brand a tenant's logs and admins belong to (`public.brands.id`).
    BrandId
);
uuid_id!(
    /// A knowledge entry (`alphadome.bot_training_data.id`).
    EntryId
);
uuid_id!(
    /// A customer of one tenant (`public.users.id`).
    CustomerId
);

/// Meta's id of a WhatsApp business number: the key that routes a message to its tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumberId(String);

impl PhoneNumberId {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let s = s.trim();
        if (5..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidValue {
                field: "phone_number_id",
                rule: "must be 5 to 32 digits, as shown in Meta's WhatsApp Manager",
            })
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PhoneNumberId {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<PhoneNumberId> for String {
    fn from(p: PhoneNumberId) -> String {
        p.0
    }
}

impl fmt::Display for PhoneNumberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A phone number in international form: digits only, with the country code, no `+`
/// (the form WhatsApp uses in `wa_id`). `Display` masks it; `as_str` gives the digits.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Accepts `254702245555`, `+254 702 245 555`, `254-702-245-555`. Refuses local forms
    /// like `0702245555`: without the country code WhatsApp cannot deliver.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let trimmed = s.trim();
        let body = trimmed.strip_prefix('+').unwrap_or(trimmed);
        let digits: String = body
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
            .collect();
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidValue {
                field: "phone",
                rule: "must contain only digits (and optional +, spaces, dashes)",
            });
        }
        if digits.starts_with('0') {
            return Err(InvalidValue {
                field: "phone",
                rule: "must start with the country code (e.g. 254 for Kenya), not 0",
            });
        }
        if !(8..=15).contains(&digits.len()) {
            return Err(InvalidValue {
                field: "phone",
                rule: "must have 8 to 15 digits including the country code",
            });
        }
        Ok(Self(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form safe for logs: country code and last two digits only.
    pub fn masked(&self) -> String {
        mask_phone(&self.0)
    }
}

/// Masks any phone-like identifier for logs: keeps three leading and two trailing characters.
pub fn mask_phone(s: &str) -> String {
    let n = s.chars().count();
    if n <= 5 {
        return "*".repeat(n);
    }
    let head: String = s.chars().take(3).collect();
    let tail: String = s.chars().skip(n - 2).collect();
    format!("{head}{}{tail}", "*".repeat(n - 5))
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<PhoneNumber> for String {
    fn from(p: PhoneNumber) -> String {
        p.0
    }
}

/// The kind of a knowledge entry: `faq` and `canned` are matched against messages; other
/// kinds (product, policy, ...) only ground the AI.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DataType(String);

impl DataType {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let s = s.trim().to_ascii_lowercase();
        let s = if s.is_empty() { "faq".to_owned() } else { s };
        let ok = s.len() <= 32
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if ok {
            Ok(Self(s))
        } else {
            Err(InvalidValue {
                field: "data_type",
                rule: "must be a lowercase word such as faq, canned, product or policy",
            })
        }
    }
    pub fn faq() -> Self {
        Self("faq".into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn is_canned(&self) -> bool {
        self.0 == "canned"
    }
    /// Whether entries of this kind may be sent to a customer as they are.
    pub fn is_matchable(&self) -> bool {
        self.0 == "faq" || self.0 == "canned"
    }
}

impl TryFrom<String> for DataType {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<DataType> for String {
    fn from(d: DataType) -> String {
        d.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kenyan_number_with_plus_and_spaces_is_normalised_to_digits() {
        assert_eq!(
            PhoneNumber::parse("+254 702 245-555").unwrap().as_str(),
            "254702245555"
        );
    }

    #[test]
    fn a_local_number_without_country_code_is_refused() {
        assert!(PhoneNumber::parse("0702245555").is_err());
        assert!(PhoneNumber::parse("2547o2245555").is_err());
        assert!(PhoneNumber::parse("1234").is_err());
    }

    #[test]
    fn a_phone_number_prints_masked() {
        let p = PhoneNumber::parse("254702245555").unwrap();
        assert_eq!(p.to_string(), "254*******55");
        assert!(!format!("{p:?}").contains("702245"));
    }

    #[test]
    fn a_phone_number_id_must_be_digits() {
        assert!(PhoneNumberId::parse("868405499681303").is_ok());
        assert!(PhoneNumberId::parse("86840x").is_err());
    }

    #[test]
    fn data_types_are_lowercase_words() {
        assert_eq!(DataType::parse("").unwrap().as_str(), "faq");
        assert_eq!(DataType::parse("Canned").unwrap().as_str(), "canned");
        assert!(DataType::parse("faq; drop").is_err());
    }
}
