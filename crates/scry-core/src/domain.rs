//! Domain names: validation, IDN handling, the registrable domain, and whether a name is public.
//!
//! A name is kept in its ASCII (A-label, punycode) form, lower-case and without a trailing dot; its
//! Unicode form is kept beside it when the two differ so analysts see `bücher.example` while
//! sources are asked about `xn--bcher-kva.example`. The registrable domain comes from the public
//! suffix list compiled into the `psl` crate; a name whose suffix is not on the list is internal.

/// Whether a name may be looked up outside the organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DomainClass {
    /// Under a suffix on the public suffix list.
    Public,
    /// Under a suffix that is not public (`.local`, `.internal`, `.corp`, `.home.arpa`, `.lan`, …
    /// or any suffix the public suffix list does not know): an organization's own names.
    Internal,
    /// Special-use names that never denote a real public host (RFC 2606, RFC 6761, RFC 7686,
    /// RFC 9476): `example.com`, `.test`, `.invalid`, `.localhost`, `.onion`, `.alt`.
    Reserved,
}

impl DomainClass {
    pub fn as_str(self) -> &'static str {
        match self {
            DomainClass::Public => "public",
            DomainClass::Internal => "internal",
            DomainClass::Reserved => "reserved",
        }
    }
}

/// A validated, normalized domain name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DomainName {
    ascii: String,
    unicode: Option<String>,
    registrable: Option<String>,
    suffix: Option<String>,
    class: DomainClass,
}

/// Why a string is not a usable domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("empty name")]
    Empty,
    #[error("name is {0} characters long; at most 253 are allowed")]
    TooLong(usize),
    #[error("label {0:?} is longer than 63 characters")]
    LabelTooLong(String),
    #[error("empty label (two dots in a row, or a leading dot)")]
    EmptyLabel,
    #[error("invalid character {0:?} in a domain name")]
    InvalidCharacter(char),
    #[error("label {0:?} starts or ends with a hyphen")]
    HyphenAtEdge(String),
    #[error("single-label name {0:?} is not a domain")]
    SingleLabel(String),
    #[error("top-level label {0:?} is numeric")]
    NumericTld(String),
    #[error("invalid internationalized name: {0}")]
    Idna(String),
}

/// Top-level labels that are reserved or special-use everywhere.
const RESERVED_TLDS: &[&str] = &["test", "invalid", "localhost", "example", "onion", "alt"];
/// Second-level names reserved for documentation (RFC 2606).
const RESERVED_DOMAINS: &[&str] = &["example.com", "example.net", "example.org"];
/// Suffixes organizations use for their own networks. Any suffix the public suffix list does not
/// know is internal too; these are listed so that the reason is explicit and stable even if one of
/// them were ever delegated.
const INTERNAL_SUFFIXES: &[&str] = &[
    "local",
    "internal",
    "intranet",
    "corp",
    "home",
    "lan",
    "localdomain",
    "private",
    "priv",
    "home.arpa",
];

impl DomainName {
    /// Parses and normalizes a domain name (already refanged). Accepts Unicode or A-label input,
    /// upper-case, and a trailing dot.
    pub fn parse(input: &str) -> Result<DomainName, DomainError> {
        let trimmed = input.trim().strip_suffix('.').unwrap_or(input.trim());
        if trimmed.is_empty() {
            return Err(DomainError::Empty);
        }
        let ascii = if trimmed.is_ascii() {
            trimmed.to_ascii_lowercase()
        } else {
            idna::domain_to_ascii(trimmed).map_err(|e| DomainError::Idna(e.to_string()))?
        };
        validate_ascii(&ascii)?;
        let unicode = if ascii.split('.').any(|l| l.starts_with("xn--")) {
            let (unicode, result) = idna::domain_to_unicode(&ascii);
            result.map_err(|e| DomainError::Idna(format!("{e} in {ascii:?}")))?;
            Some(unicode).filter(|u| *u != ascii)
        } else {
            None
        };
        let suffix = psl::suffix(ascii.as_bytes())
            .filter(|s| s.is_known())
            .map(|s| String::from_utf8_lossy(s.as_bytes()).into_owned());
        let class = classify(&ascii, suffix.is_some());
        // Internal names have no registrable domain: `nas.home.arpa` belongs to nobody.
        let registrable = (class != DomainClass::Internal && suffix.is_some())
            .then(|| psl::domain_str(&ascii))
            .flatten()
            .map(str::to_owned);
        Ok(DomainName {
            ascii,
            unicode,
            registrable,
            suffix,
            class,
        })
    }

    /// The normalized ASCII form (what sources are asked about).
    pub fn as_str(&self) -> &str {
        &self.ascii
    }

    /// The Unicode form, when the name is internationalized.
    pub fn unicode(&self) -> Option<&str> {
        self.unicode.as_deref()
    }

    /// The registrable domain (`login.example.co.uk` → `example.co.uk`), when the suffix is public.
    pub fn registrable(&self) -> Option<&str> {
        self.registrable.as_deref()
    }

    /// The public suffix (`co.uk`), when it is on the public suffix list.
    pub fn public_suffix(&self) -> Option<&str> {
        self.suffix.as_deref()
    }

    pub fn class(&self) -> DomainClass {
        self.class
    }

    /// True if the name is under one of the suffixes organizations use for their own networks
    /// (`.local`, `.corp`, `.home.arpa`, …), as opposed to merely an unknown suffix.
    pub fn has_internal_suffix(&self) -> bool {
        INTERNAL_SUFFIXES
            .iter()
            .any(|suffix| self.is_within(suffix))
    }

    pub fn is_idn(&self) -> bool {
        self.unicode.is_some()
    }

    /// True if this name is `parent` or lies under it.
    pub fn is_within(&self, parent: &str) -> bool {
        within(&self.ascii, parent)
    }
}

fn validate_ascii(ascii: &str) -> Result<(), DomainError> {
    if ascii.len() > 253 {
        return Err(DomainError::TooLong(ascii.len()));
    }
    let labels: Vec<&str> = ascii.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return Err(DomainError::EmptyLabel);
        }
        if label.len() > 63 {
            return Err(DomainError::LabelTooLong((*label).to_owned()));
        }
        // Letters, digits and hyphens (RFC 1123); underscores appear in real service and malware
        // host names (`_dmarc`, `c2_node.example`) and are accepted.
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(DomainError::InvalidCharacter(bad));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(DomainError::HyphenAtEdge((*label).to_owned()));
        }
    }
    let tld = labels.last().expect("split yields at least one label");
    if labels.len() < 2 {
        return Err(DomainError::SingleLabel(ascii.to_owned()));
    }
    if tld.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DomainError::NumericTld((*tld).to_owned()));
    }
    Ok(())
}

/// True if the ASCII name `name` is `parent` or lies under it.
fn within(name: &str, parent: &str) -> bool {
    name == parent
        || name
            .strip_suffix(parent)
            .is_some_and(|head| head.ends_with('.'))
}

fn classify(ascii: &str, suffix_is_public: bool) -> DomainClass {
    if RESERVED_TLDS.iter().any(|t| within(ascii, t))
        || RESERVED_DOMAINS.iter().any(|d| within(ascii, d))
    {
        return DomainClass::Reserved;
    }
    if INTERNAL_SUFFIXES.iter().any(|s| within(ascii, s)) || !suffix_is_public {
        return DomainClass::Internal;
    }
    DomainClass::Public
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> DomainName {
        DomainName::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    #[test]
    fn normalizes_case_and_trailing_dot() {
        let d = parse("WWW.Example.CO.UK.");
        assert_eq!(d.as_str(), "www.example.co.uk");
        assert_eq!(d.registrable(), Some("example.co.uk"));
        assert_eq!(d.public_suffix(), Some("co.uk"));
        assert_eq!(d.class(), DomainClass::Public);
    }

    #[test]
    fn idn_keeps_both_forms() {
        let d = parse("BÜCHER.de");
        assert_eq!(d.as_str(), "xn--bcher-kva.de");
        assert_eq!(d.unicode(), Some("bücher.de"));
        let from_ascii = parse("xn--bcher-kva.de");
        assert_eq!(from_ascii, d);
        // Cyrillic "а" in a look-alike of paypal.com.
        let spoof = parse("pаypal.com");
        assert_eq!(spoof.as_str(), "xn--pypal-4ve.com");
        assert_eq!(spoof.unicode(), Some("pаypal.com"));
        assert_eq!(spoof.registrable(), Some("xn--pypal-4ve.com"));
    }

    #[test]
    fn registrable_domain_follows_the_public_suffix_list() {
        assert_eq!(
            parse("a.b.login.paypal.co.uk").registrable(),
            Some("paypal.co.uk")
        );
        assert_eq!(
            parse("evil.github.io").registrable(),
            Some("evil.github.io")
        );
        assert_eq!(
            parse("city.kawasaki.jp").registrable(),
            Some("city.kawasaki.jp")
        );
        assert_eq!(parse("x.example.com").registrable(), Some("example.com"));
    }

    #[test]
    fn internal_and_reserved_names() {
        for name in [
            "printer.local",
            "dc01.corp",
            "nas.home.arpa",
            "git.internal",
            "box.lan",
            "srv.localdomain",
            "x.notatld",
        ] {
            assert_eq!(parse(name).class(), DomainClass::Internal, "{name}");
            assert_eq!(parse(name).registrable(), None, "{name}");
        }
        for name in [
            "example.com",
            "www.example.org",
            "foo.test",
            "bar.invalid",
            "app.localhost",
            "hidden.onion",
            "x.alt",
        ] {
            assert_eq!(parse(name).class(), DomainClass::Reserved, "{name}");
        }
    }

    #[test]
    fn invalid_names_are_rejected_with_reasons() {
        let err = |s: &str| DomainName::parse(s).expect_err(s);
        assert_eq!(err(""), DomainError::Empty);
        assert_eq!(err("a..com"), DomainError::EmptyLabel);
        assert_eq!(err("-bad.com"), DomainError::HyphenAtEdge("-bad".into()));
        assert_eq!(err("bad-.com"), DomainError::HyphenAtEdge("bad-".into()));
        assert_eq!(err("exa mple.com"), DomainError::InvalidCharacter(' '));
        assert_eq!(
            err("localhost2"),
            DomainError::SingleLabel("localhost2".into())
        );
        assert_eq!(err("1.2.3.999"), DomainError::NumericTld("999".into()));
        assert!(matches!(
            err(&format!("{}.com", "a".repeat(64))),
            DomainError::LabelTooLong(_)
        ));
        assert!(matches!(
            err(&format!("{}com", "abcdefghi.".repeat(26))),
            DomainError::TooLong(_)
        ));
        assert!(matches!(err("xn--zz.com"), DomainError::Idna(_)));
    }
}
