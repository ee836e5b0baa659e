//! Undoing the "defanging" analysts apply so that indicators in reports and e-mails are not
//! clickable (`hxxp://evil[.]com`, `1.2.3[.]4`, `user[at]example(.)com`).
//!
//! Refanging runs before any parsing, on single tokens and on whole lines of free text alike; it
//! only rewrites the bracketed or obfuscated forms, never ordinary text.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// Every defanging form scry undoes, in one case-insensitive alternation. Groups 1–5 are separators
/// replaced by a fixed plain form (see [`PLAIN_SEPARATORS`]); groups 6–8 are a defanged scheme
/// (`hxxp`, `h**p`, `fxp`), its optional `s`, and the separator that follows it.
static DEFANGED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)",
        r"\b(h(?:xx|\*\*)p|fxp)(s?)(\[\s*://\s*\]|\(\s*://\s*\)|\[:\]//|\[:/\]/|:\[//\]|://|\[\s*:\s*\]|:)",
        r"|(\[\s*://\s*\]|\(\s*://\s*\)|\{\s*://\s*\}|\[:\]//|\[:/\]/|:\[//\])",
        r"|(\[\s*(?:\.|dot)\s*\]|\(\s*(?:\.|dot)\s*\)|\{\s*(?:\.|dot)\s*\}|\\\.)",
        r"|(\[\s*:\s*\]|\(\s*:\s*\)|\{\s*:\s*\})",
        r"|(\[\s*/\s*\])",
        r"|(\[\s*(?:@|at)\s*\]|\(\s*(?:@|at)\s*\)|\{\s*(?:@|at)\s*\})",
    ))
    .expect("the defanging pattern is valid")
});

/// Quick pre-check so that the common case (nothing defanged) costs one scan and no allocation.
static MAYBE_DEFANGED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)[\[\(\{\\]|xx|\*\*|fxp").expect("valid pattern"));

/// Plain forms of the separator groups 4 to 8, in group order.
const PLAIN_SEPARATORS: [&str; 5] = ["://", ".", ":", "/", "@"];

/// Returns `text` with every defanged form replaced by its plain form; borrows when nothing changed.
pub fn refang(text: &str) -> Cow<'_, str> {
    if !MAYBE_DEFANGED.is_match(text) {
        return Cow::Borrowed(text);
    }
    DEFANGED.replace_all(text, |caps: &regex::Captures<'_>| {
        if let Some(scheme) = caps.get(1) {
            let plain = if scheme.as_str().eq_ignore_ascii_case("fxp") {
                "ftp"
            } else {
                "http"
            };
            let secure = caps[2].to_ascii_lowercase();
            let separator = if caps[3].contains("//") { "://" } else { ":" };
            return format!("{plain}{secure}{separator}");
        }
        let group = (4..=8)
            .find(|g| caps.get(*g).is_some())
            .expect("one group matched");
        PLAIN_SEPARATORS[group - 4].to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::refang;

    #[test]
    fn undoes_every_documented_form() {
        let cases = [
            ("hxxp://evil[.]com", "http://evil.com"),
            ("hxxps://evil[.]com/a", "https://evil.com/a"),
            ("HXXPS://EVIL[.]COM", "https://EVIL.COM"),
            ("h**p://evil.com", "http://evil.com"),
            ("fxp://files(.)evil.com", "ftp://files.evil.com"),
            ("fxps://files.evil.com", "ftps://files.evil.com"),
            ("evil(.)com", "evil.com"),
            ("evil[dot]com", "evil.com"),
            ("evil(dot)com", "evil.com"),
            ("evil{.}com", "evil.com"),
            ("evil{dot}com", "evil.com"),
            ("evil[ . ]com", "evil.com"),
            ("evil\\.com", "evil.com"),
            ("http[:]//evil.com", "http://evil.com"),
            ("hxxp[:]//evil.com", "http://evil.com"),
            ("http[://]evil.com", "http://evil.com"),
            ("http(://)evil.com", "http://evil.com"),
            ("http:[//]evil.com", "http://evil.com"),
            ("1.2.3[.]4", "1.2.3.4"),
            ("2001:db8[:]:1", "2001:db8::1"),
            ("user[at]evil[.]com", "user@evil.com"),
            ("user[@]evil[.]com", "user@evil.com"),
            ("user(at)evil(.)com", "user@evil.com"),
            ("http://evil.com[/]path", "http://evil.com/path"),
        ];
        for (defanged, plain) in cases {
            assert_eq!(refang(defanged), plain, "refanging {defanged:?}");
        }
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        for text in [
            "http://example.com/a?b=c",
            "see (the report) [1]",
            "xxl.example.com",
        ] {
            assert_eq!(refang(text), text);
        }
    }
}
