//! Finding every indicator in free text: an e-mail, a report, a chat message pasted as is.
//!
//! The line is refanged first, then split at characters that never occur inside an indicator
//! (white space, quotes, brackets, commas), and each token, trimmed of sentence punctuation, is
//! parsed with [`Observable::parse`]. Tokens that are not indicators are ordinary prose and are not
//! errors. Bare words that would only be "domains" under a suffix nobody has delegated
//! (`file.exe`, `e.g`) are left out; internal names under the well-known internal suffixes stay in.

use crate::domain::DomainClass;
use crate::observable::Observable;
use crate::refang::refang;

/// One indicator found in a line, with the text it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub token: String,
    pub observable: Observable,
}

fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '"' | '\''
                | '`'
                | '<'
                | '>'
                | '('
                | ')'
                | '{'
                | '}'
                | ','
                | ';'
                | '|'
                | '\u{201c}'
                | '\u{201d}'
                | '\u{2018}'
                | '\u{2019}'
        )
}

/// `token` without the sentence punctuation around it, and without brackets that are not its
/// own: a pair around the whole token (`[1.2.3.4]`), or one that closes or opens nothing inside
/// it. Brackets that pair up inside the token stay (`http://evil.com/p[1]`).
fn trim_punctuation(token: &str) -> &str {
    let mut token = token;
    loop {
        let before = token;
        token = token
            .trim_start_matches(['.', ':', '*', '-', '='])
            .trim_end_matches(['.', ':', '!', '?', '*', '=']);
        let opens = token.matches('[').count();
        let closes = token.matches(']').count();
        if token.len() >= 2 && token.starts_with('[') && token.ends_with(']') {
            token = &token[1..token.len() - 1];
        } else if token.ends_with(']') && closes > opens {
            token = &token[..token.len() - 1];
        } else if token.starts_with('[') && opens > closes {
            token = &token[1..];
        }
        if token == before {
            return token;
        }
    }
}

/// Every indicator in `line`, in order of appearance (duplicates within the line included).
pub fn extract(line: &str) -> Vec<Found> {
    let refanged = refang(line);
    let mut found = Vec::new();
    for raw in refanged.split(is_separator) {
        let token = trim_punctuation(raw);
        if token.len() < 3 {
            continue;
        }
        let Ok(observable) = Observable::parse(token) else {
            continue;
        };
        let bare_unknown_name = matches!(&observable, Observable::Domain(d)
            if d.class() == DomainClass::Internal && d.public_suffix().is_none() && !d.has_internal_suffix());
        if !bare_unknown_name {
            found.push(Found {
                token: token.to_owned(),
                observable,
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<String> {
        extract(text)
            .into_iter()
            .map(|f| f.observable.value())
            .collect()
    }

    #[test]
    fn finds_indicators_in_prose() {
        let mail = "Hi team, the phishing kit at hxxps://login-micros0ft[.]com/owa/ (hosted on 185.220.101[.]4) \
                    mailed victims from billing[at]invoices-portal(.)net. Also seen: CVE-2023-4966, AS9009, \
                    and the dropper 44d88612fea8a8f36de82e1278abb02f. Our own dc01.corp.local was not touched.";
        assert_eq!(
            values(mail),
            [
                "https://login-micros0ft.com/owa/",
                "185.220.101.4",
                "billing@invoices-portal.net",
                "CVE-2023-4966",
                "AS9009",
                "44d88612fea8a8f36de82e1278abb02f",
                "dc01.corp.local",
            ]
        );
    }

    #[test]
    fn ignores_words_file_names_and_numbers() {
        assert!(
            values("Please open invoice.exe and report.docx, e.g. now. Version 2.0 is out.")
                .is_empty()
        );
    }

    /// SOC prose full of numbers that look like addresses or paths to a lenient parser: scores,
    /// versions, dates, fractions, section numbers. None of it is an indicator, while the real
    /// indicators in the same text, plain and defanged, are all found.
    #[test]
    fn numbers_in_soc_prose_are_not_indicators() {
        let prose = "CVSS 9.8/10 (critical), was 7.5/10 in the first advisory. Affects 2.4/2.5 \
                     and 1.0.2/1.1.1 branches; fixed in 3.0. Patch by 12/05/2026, or 2026/12/05, \
                     or 05.12.2026 at the latest. 3/4 of hosts are done, 1/2 of the rest by 1.5. \
                     See section 4.2.1/a and table 3.1. Counts: 127.1 and 2130706433 events, \
                     ratio 10/3, score 0.8/1.0, uptime 99.9/100.";
        assert_eq!(values(prose), Vec::<String>::new(), "from {prose}");
        let mixed = format!(
            "{prose} The C2 at 45.155.205[.]233/gate.php and hxxp://evil[.]example.net/a/b, \
             beacon to 8.8.4.4:53 and 185.220.101.4/24; mail from x@phish-mail.net."
        );
        assert_eq!(
            values(&mixed),
            [
                "http://45.155.205.233/gate.php",
                "http://evil.example.net/a/b",
                "8.8.4.4",
                "185.220.101.0/24",
                "x@phish-mail.net",
            ]
        );
    }

    /// Brackets that pair up inside a URL are part of it; those around it are not.
    #[test]
    fn brackets_belong_to_a_token_only_when_they_pair_up_inside_it() {
        assert_eq!(
            values("see http://evil.com/p[1] and [http://evil.com/r]. Also [45.155.205.233]: bad"),
            [
                "http://evil.com/p%5B1%5D",
                "http://evil.com/r",
                "45.155.205.233"
            ]
        );
        assert_eq!(values("(x: http://evil.com/q]"), ["http://evil.com/q"]);
    }

    #[test]
    fn sentence_punctuation_is_not_part_of_a_token() {
        assert_eq!(
            values("Blocked evil.com. Then 8.8.8.8: fine!"),
            ["evil.com", "8.8.8.8"]
        );
        assert_eq!(
            values("[1.2.3.4] and <http://x.example.net/a>"),
            ["1.2.3.4", "http://x.example.net/a"]
        );
    }
}
