//! STIX 2.1 patterns: reading indicator values out of them, and writing the one for an observable.
//!
//! scry does not evaluate patterns; it needs the values an indicator is about. Every equality
//! comparison (`=`) and set membership (`IN (…)`) on an object path is returned; other operators
//! (`!=`, `LIKE`, `MATCHES`, ordering) describe sets scry cannot enumerate and are left out.
//! Observation operators (`AND`, `OR`, `FOLLOWEDBY`) and qualifiers (`WITHIN`, `REPEATS`,
//! `START … STOP`) only combine observations, so each comparison inside them is returned.
//!
//! A small tokenizer is used instead of a full STIX pattern crate: the one mature Rust
//! implementation (rstix) brings a 70 k-line object model and needs a newer compiler than scry's.

use scry_core::Observable;

/// One `object-type:path = value` comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// `ipv4-addr`, `domain-name`, `file`, …
    pub object_type: String,
    /// The property path after the colon: `value`, `number`, `hashes.'SHA-256'`.
    pub path: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("unterminated string starting at character {0}")]
    UnterminatedString(usize),
    #[error("unexpected character {0:?} at character {1}")]
    Unexpected(char, usize),
    #[error("pattern has no '[' observation")]
    NoObservation,
    #[error("unbalanced brackets: {0} '[' and {1} ']'")]
    Unbalanced(usize, usize),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    LParen,
    RParen,
    Comma,
    Word(String),
    Str(String),
    Op(String),
}

fn tokenize(pattern: &str) -> Result<Vec<Token>, PatternError> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '[' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ']' => {
                tokens.push(Token::Close);
                i += 1;
            }
            '(' => {
                tokens.push(Token::LParen);
                i += 1;
            }
            ')' => {
                tokens.push(Token::RParen);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            '\'' => {
                let (text, next) = read_string(&chars, i)?;
                tokens.push(Token::Str(text));
                i = next;
            }
            '=' | '!' | '<' | '>' => {
                let two = chars.get(i + 1) == Some(&'=');
                let op: String = if two {
                    [c, '='].iter().collect()
                } else {
                    c.to_string()
                };
                tokens.push(Token::Op(op));
                i += if two { 2 } else { 1 };
            }
            c if c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '+') => {
                // A word or an object path; a path may contain quoted segments (`hashes.'SHA-256'`).
                let mut word = String::new();
                while i < chars.len() {
                    let c = chars[i];
                    if c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '+' | '*') {
                        word.push(c);
                        i += 1;
                    } else if c == '\'' && word.ends_with('.') {
                        let (segment, next) = read_string(&chars, i)?;
                        word.push('\'');
                        word.push_str(&segment);
                        word.push('\'');
                        i = next;
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Word(word));
            }
            other => return Err(PatternError::Unexpected(other, i)),
        }
    }
    Ok(tokens)
}

/// Reads a single-quoted string starting at `start`; returns the unescaped text and the index after it.
fn read_string(chars: &[char], start: usize) -> Result<(String, usize), PatternError> {
    let mut text = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => {
                text.push(chars[i + 1]);
                i += 2;
            }
            '\'' => return Ok((text, i + 1)),
            c => {
                text.push(c);
                i += 1;
            }
        }
    }
    Err(PatternError::UnterminatedString(start))
}

/// Every equality and set-membership comparison in `pattern`, in order.
pub fn comparisons(pattern: &str) -> Result<Vec<Comparison>, PatternError> {
    let tokens = tokenize(pattern)?;
    let opened = tokens.iter().filter(|t| **t == Token::Open).count();
    let closed = tokens.iter().filter(|t| **t == Token::Close).count();
    if opened == 0 {
        return Err(PatternError::NoObservation);
    }
    if opened != closed {
        return Err(PatternError::Unbalanced(opened, closed));
    }
    let mut found = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let Token::Word(path) = &tokens[i] else {
            i += 1;
            continue;
        };
        let Some((object_type, property)) = path.split_once(':') else {
            i += 1;
            continue;
        };
        let comparison = |value: &str| Comparison {
            object_type: object_type.to_owned(),
            path: property.to_owned(),
            value: value.to_owned(),
        };
        match (tokens.get(i + 1), tokens.get(i + 2)) {
            (Some(Token::Op(op)), Some(value)) if op == "=" => {
                if let Some(text) = scalar(value) {
                    found.push(comparison(&text));
                }
                i += 3;
            }
            (Some(Token::Word(kw)), Some(Token::LParen)) if kw.eq_ignore_ascii_case("IN") => {
                let mut j = i + 3;
                while let Some(token) = tokens.get(j) {
                    match token {
                        Token::RParen => break,
                        Token::Comma => {}
                        value => {
                            if let Some(text) = scalar(value) {
                                found.push(comparison(&text));
                            }
                        }
                    }
                    j += 1;
                }
                i = j + 1;
            }
            _ => i += 1,
        }
    }
    Ok(found)
}

fn scalar(token: &Token) -> Option<String> {
    match token {
        Token::Str(s) => Some(s.clone()),
        Token::Word(w) if w.bytes().all(|b| b.is_ascii_digit()) => Some(w.clone()),
        _ => None,
    }
}

/// The STIX pattern matching an observable; `None` for kinds no pattern describes (CVE ids).
pub fn observable_pattern(observable: &Observable) -> Option<String> {
    let quoted = |text: &str| format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"));
    Some(match observable {
        Observable::Cidr(net) => format!(
            "[{}:value ISSUBSET {}]",
            observable.stix_type(),
            quoted(&net.to_string())
        ),
        Observable::Asn(number) => format!("[autonomous-system:number = {number}]"),
        Observable::Hash { algorithm, value } => format!(
            "[file:hashes.'{}' = {}]",
            algorithm.stix_name(),
            quoted(value)
        ),
        Observable::Cve(_) => return None,
        other => format!("[{}:value = {}]", other.stix_type(), quoted(&other.value())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pattern: &str) -> Vec<(String, String, String)> {
        comparisons(pattern)
            .expect("pattern parses")
            .into_iter()
            .map(|c| (c.object_type, c.path, c.value))
            .collect()
    }

    fn triple(t: &str, p: &str, v: &str) -> (String, String, String) {
        (t.into(), p.into(), v.into())
    }

    #[test]
    fn simple_and_combined_observations() {
        assert_eq!(
            values("[ipv4-addr:value = '198.51.100.1']"),
            [triple("ipv4-addr", "value", "198.51.100.1")]
        );
        assert_eq!(
            values(
                "[domain-name:value = 'evil.com' OR url:value = 'http://evil.com/a\\'b'] AND [autonomous-system:number = 64512] WITHIN 60 SECONDS"
            ),
            [
                triple("domain-name", "value", "evil.com"),
                triple("url", "value", "http://evil.com/a'b"),
                triple("autonomous-system", "number", "64512")
            ]
        );
        assert_eq!(
            values("[file:hashes.'SHA-256' = 'aec07064'] OR [file:hashes.MD5 = 'd41d8cd9']"),
            [
                triple("file", "hashes.'SHA-256'", "aec07064"),
                triple("file", "hashes.MD5", "d41d8cd9")
            ]
        );
    }

    #[test]
    fn set_membership_and_unsupported_operators() {
        assert_eq!(
            values("[ipv4-addr:value IN ('1.2.3.4', '5.6.7.8')]"),
            [
                triple("ipv4-addr", "value", "1.2.3.4"),
                triple("ipv4-addr", "value", "5.6.7.8")
            ]
        );
        assert!(
            values("[domain-name:value LIKE '%.evil.com'] AND [ipv4-addr:value != '1.1.1.1']")
                .is_empty()
        );
        assert_eq!(values("[ipv4-addr:value ISSUBSET '10.0.0.0/8']"), []);
    }

    #[test]
    fn malformed_patterns_say_where() {
        assert_eq!(
            comparisons("[ipv4-addr:value = '1.2.3.4]"),
            Err(PatternError::UnterminatedString(19))
        );
        assert_eq!(
            comparisons("ipv4-addr:value = '1.2.3.4'"),
            Err(PatternError::NoObservation)
        );
        assert_eq!(
            comparisons("[a:b = 'x'] ; rm"),
            Err(PatternError::Unexpected(';', 12))
        );
        assert_eq!(
            comparisons("[ipv4-addr:value = '1.2.3.4'"),
            Err(PatternError::Unbalanced(1, 0))
        );
    }

    #[test]
    fn patterns_quote_and_cover_every_kind() {
        let pattern_of = |text: &str| observable_pattern(&Observable::parse(text).expect("parses"));
        assert_eq!(
            pattern_of("1.2.3.4").as_deref(),
            Some("[ipv4-addr:value = '1.2.3.4']")
        );
        assert_eq!(
            pattern_of("10.0.0.0/8").as_deref(),
            Some("[ipv4-addr:value ISSUBSET '10.0.0.0/8']")
        );
        assert_eq!(
            pattern_of("AS9009").as_deref(),
            Some("[autonomous-system:number = 9009]")
        );
        assert_eq!(
            pattern_of("http://evil.example.com/a'b").as_deref(),
            Some("[url:value = 'http://evil.example.com/a\\'b']")
        );
        assert_eq!(pattern_of("CVE-2024-6387"), None);
        for text in [
            "1.2.3.4",
            "evil.example.com",
            "http://evil.example.com/a'b",
            "AS9009",
        ] {
            let p = pattern_of(text).expect("pattern");
            assert!(
                !comparisons(&p)
                    .expect("scry reads its own patterns")
                    .is_empty()
            );
        }
    }
}
