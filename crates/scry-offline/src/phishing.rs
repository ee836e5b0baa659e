//! Phishing and impersonation heuristics for domains and URLs: offline signals, each with the
//! points it adds to the priority and a value that says why.
//!
//! | signal | points | when |
//! |---|---|---|
//! | `lookalike` | 45 / 35 / 20 | the registrable name reads as a protected one (confusable characters or digits for letters: 45), is one or two edits from it (35), or is the same name under another suffix (20) |
//! | `brand-in-name` | 30 | a protected brand is a word of an unrelated registrable name (`paypal-account-verify.info`) |
//! | `brand-in-subdomain` | 30 | … or of its subdomains (`paypal.com.secure-login.net`) |
//! | `brand-in-path` | 15 | … or of a URL's path on an unrelated host |
//! | `mixed-script` | 20 | a label mixes scripts (Latin with Cyrillic, …) |
//! | `punycode` | 5 | the name is internationalized |
//! | `credential-bait` | 10 | words such as login, verify, account, password in the host or path |
//! | `suspicious-tld` | 10 | a suffix much used for abuse (`.xyz`, `.top`, `.zip`, …) |
//! | `deep-hostname` | 5 | five or more labels, or a name longer than 60 characters |
//! | `ip-literal-url` | 15 | a URL to a bare IP address |
//! | `dga-like` | 15 | a long registrable name of random-looking characters |
//!
//! A name under one of the protected domains themselves (`login.microsoft.com`) raises nothing:
//! a brand's own hosts are not look-alikes of it.

use scry_core::DomainName;
use scry_core::observable::{UrlHost, UrlObservable};
use unicode_security::MixedScript;

/// A brand to protect and the registrable domains that are its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brand {
    /// The brand as a word in domain names (`paypal`).
    pub name: String,
    /// Its own registrable domains (`paypal.com`); the first is named in explanations.
    pub domains: Vec<String>,
}

/// Widely phished brands, shipped so look-alikes show from the start; an organization adds its
/// own domains first.
pub fn default_brands() -> Vec<Brand> {
    [
        (
            "microsoft",
            &[
                "microsoft.com",
                "microsoftonline.com",
                "office.com",
                "office365.com",
                "live.com",
                "outlook.com",
                "sharepoint.com",
                "azure.com",
                "windows.net",
                "msn.com",
            ][..],
        ),
        ("paypal", &["paypal.com", "paypal.me", "paypalobjects.com"]),
        ("apple", &["apple.com", "icloud.com", "apple.news"]),
        (
            "google",
            &[
                "google.com",
                "gmail.com",
                "googleapis.com",
                "googleusercontent.com",
                "gstatic.com",
                "youtube.com",
            ],
        ),
        (
            "amazon",
            &[
                "amazon.com",
                "amazonaws.com",
                "amazon.co.uk",
                "amazon.de",
                "amazon.co.jp",
            ],
        ),
        (
            "facebook",
            &["facebook.com", "fb.com", "fbcdn.net", "meta.com"],
        ),
        ("instagram", &["instagram.com"]),
        ("whatsapp", &["whatsapp.com", "whatsapp.net"]),
        ("netflix", &["netflix.com"]),
        ("linkedin", &["linkedin.com", "licdn.com"]),
        ("dropbox", &["dropbox.com"]),
        ("docusign", &["docusign.com", "docusign.net"]),
        ("adobe", &["adobe.com"]),
        ("dhl", &["dhl.com", "dhl.de"]),
        ("fedex", &["fedex.com"]),
        ("chase", &["chase.com"]),
        ("wellsfargo", &["wellsfargo.com"]),
        ("bankofamerica", &["bankofamerica.com"]),
        ("coinbase", &["coinbase.com"]),
        ("binance", &["binance.com"]),
        ("steam", &["steampowered.com", "steamcommunity.com"]),
    ]
    .into_iter()
    .map(|(name, domains)| Brand {
        name: name.to_owned(),
        domains: domains.iter().map(|d| (*d).to_owned()).collect(),
    })
    .collect()
}

/// Suffixes much used for abuse, per the abuse trackers' long-running rankings.
const SUSPICIOUS_TLDS: &[&str] = &[
    "xyz", "top", "tk", "ml", "ga", "cf", "gq", "zip", "mov", "click", "country", "work",
    "support", "rest", "cam", "icu", "buzz", "monster", "info", "live", "shop", "online", "site",
    "fit", "cyou",
];

/// Words that bait credentials.
const BAIT_WORDS: &[&str] = &[
    "login",
    "logon",
    "signin",
    "sign-in",
    "verify",
    "verification",
    "account",
    "secure",
    "update",
    "password",
    "passwd",
    "webscr",
    "wallet",
    "unlock",
    "suspended",
    "confirm",
    "billing",
    "auth",
    "recovery",
    "validate",
];

/// One heuristic that fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    pub signal: &'static str,
    pub value: String,
    pub points: i32,
}

/// A protected name, prepared for comparison.
#[derive(Debug, Clone)]
struct Protected {
    /// The domain named in explanations.
    domain: String,
    /// Its registrable name without the suffix (`paypal` of `paypal.com`).
    label: String,
}

/// The protected brands and domains, ready to check names against.
#[derive(Debug, Clone, Default)]
pub struct Heuristics {
    brands: Vec<Brand>,
    names: Vec<Protected>,
}

impl Heuristics {
    /// `brands` in order of importance: an organization's own first.
    pub fn new(brands: Vec<Brand>) -> Heuristics {
        let mut names = Vec::new();
        for brand in &brands {
            for domain in &brand.domains {
                let label = domain.split('.').next().unwrap_or(domain).to_owned();
                // Very short names (fb, me) would make every short name a look-alike.
                if label.chars().count() >= 4 {
                    names.push(Protected {
                        domain: domain.clone(),
                        label,
                    });
                }
            }
        }
        Heuristics { brands, names }
    }

    /// How many brands are protected.
    pub fn brand_count(&self) -> usize {
        self.brands.len()
    }

    /// True when `registrable` is one of the protected domains.
    fn is_protected(&self, registrable: &str) -> bool {
        self.brands
            .iter()
            .any(|b| b.domains.iter().any(|d| d == registrable))
    }

    /// The signals a domain name raises.
    pub fn domain(&self, domain: &DomainName) -> Vec<Signal> {
        let mut signals = Vec::new();
        let Some(registrable) = domain.registrable() else {
            return signals;
        };
        if self.is_protected(registrable) {
            return signals;
        }
        let suffix = domain.public_suffix().unwrap_or("");
        let unicode = domain.unicode().unwrap_or(domain.as_str());
        // The registrable name without its suffix, as written and as it reads.
        let ascii_label = registrable
            .strip_suffix(suffix)
            .map_or(registrable, |l| l.trim_end_matches('.'));
        let unicode_registrable = unicode_tail(unicode, registrable);
        let unicode_label = unicode_registrable
            .strip_suffix(suffix)
            .map_or(unicode_registrable, |l| l.trim_end_matches('.'));
        if let Some(found) = self.lookalike(ascii_label, unicode_label, registrable) {
            signals.push(found);
        } else if let Some(brand) = self.brand_in_words(ascii_label) {
            signals.push(Signal {
                signal: "brand-in-name",
                value: format!("{brand} in {registrable}"),
                points: 30,
            });
        }
        let subdomains = domain
            .as_str()
            .strip_suffix(registrable)
            .map(|s| s.trim_end_matches('.'))
            .unwrap_or("");
        if let Some(brand) = self.brand_in_words(subdomains) {
            signals.push(Signal {
                signal: "brand-in-subdomain",
                value: format!("{brand} in a subdomain of {registrable}"),
                points: 30,
            });
        }
        if domain.unicode().is_some() {
            if let Some(label) = unicode.split('.').find(|l| !l.is_single_script()) {
                signals.push(Signal {
                    signal: "mixed-script",
                    value: label.to_owned(),
                    points: 20,
                });
            }
            signals.push(Signal {
                signal: "punycode",
                value: unicode.to_owned(),
                points: 5,
            });
        }
        if let Some(word) = bait_word(domain.as_str()) {
            signals.push(bait(word, "the name"));
        }
        if SUSPICIOUS_TLDS.contains(&suffix) {
            signals.push(Signal {
                signal: "suspicious-tld",
                value: format!(".{suffix}"),
                points: 10,
            });
        }
        let labels = domain.as_str().split('.').count();
        if labels >= 5 || domain.as_str().len() > 60 {
            signals.push(Signal {
                signal: "deep-hostname",
                value: format!("{labels} labels, {} characters", domain.as_str().len()),
                points: 5,
            });
        }
        if signals.is_empty() && looks_generated(ascii_label) {
            signals.push(Signal {
                signal: "dga-like",
                value: ascii_label.to_owned(),
                points: 15,
            });
        }
        signals
    }

    /// The signals a URL raises: its host's, and those of its path.
    pub fn url(&self, url: &UrlObservable) -> Vec<Signal> {
        let (mut signals, own_host) = match url.host() {
            UrlHost::Domain(domain) => (
                self.domain(domain),
                domain.registrable().is_some_and(|r| self.is_protected(r)),
            ),
            UrlHost::Ip(ip) => (
                vec![Signal {
                    signal: "ip-literal-url",
                    value: ip.to_string(),
                    points: 15,
                }],
                false,
            ),
        };
        if own_host {
            return signals;
        }
        let path = url::Url::parse(url.as_str())
            .map(|u| {
                let mut rest = u.path().to_ascii_lowercase();
                if let Some(query) = u.query() {
                    rest.push('?');
                    rest.push_str(&query.to_ascii_lowercase());
                }
                rest
            })
            .unwrap_or_default();
        if !signals.iter().any(|s| s.signal == "credential-bait")
            && let Some(word) = bait_word(&path)
        {
            signals.push(bait(word, "the path"));
        }
        if !signals
            .iter()
            .any(|s| s.signal.starts_with("brand-") || s.signal == "lookalike")
            && let Some(brand) = self.brand_in_words(&path)
        {
            signals.push(Signal {
                signal: "brand-in-path",
                value: format!("{brand} in the path"),
                points: 15,
            });
        }
        signals
    }

    /// The strongest way `label` imitates a protected name, if it does.
    fn lookalike(&self, ascii: &str, unicode: &str, registrable: &str) -> Option<Signal> {
        let read = fold(&unicode_security::skeleton(unicode).collect::<String>());
        let mut best: Option<Signal> = None;
        for name in &self.names {
            let (how, points) = if ascii == name.label {
                ("the same name under another suffix", 20)
            } else if read == name.label {
                ("characters that read alike", 45)
            } else if name.label.len() >= 5
                && strsim::osa_distance(&read, &name.label) <= edits_allowed(&name.label)
            {
                ("a typing slip away", 35)
            } else {
                continue;
            };
            if best.as_ref().is_none_or(|b| b.points < points) {
                best = Some(Signal {
                    signal: "lookalike",
                    value: format!("{registrable} imitates {} ({how})", name.domain),
                    points,
                });
            }
        }
        best
    }

    /// The first brand that is a label of `text` or a word of one (split at hyphens and
    /// underscores, digits at either end ignored), read with digits for letters undone. Brands of six letters or more
    /// also count inside a longer word or one edit away.
    fn brand_in_words(&self, text: &str) -> Option<&str> {
        // Whole labels (a brand may have hyphens: acme-industries) and the words within them.
        let labels = text.split(['.', '/', '?', '&', '=', '+']);
        let words: Vec<String> = labels
            .clone()
            .chain(labels.flat_map(|l| l.split(['-', '_'])))
            .filter(|w| !w.is_empty())
            .map(fold)
            .collect();
        self.brands.iter().map(|b| b.name.as_str()).find(|brand| {
            words.iter().any(|word| {
                let word = word.trim_matches(|c: char| c.is_ascii_digit());
                word == *brand
                    || (brand.len() >= 6
                        && (word.contains(brand)
                            || (word.len() + 2 >= brand.len()
                                && strsim::osa_distance(word, brand) <= 1)))
            })
        })
    }
}

/// The end of the Unicode form that corresponds to `registrable` (same number of labels).
fn unicode_tail<'a>(unicode: &'a str, registrable: &str) -> &'a str {
    let keep = registrable.split('.').count();
    let labels: Vec<&str> = unicode.split('.').collect();
    if labels.len() < keep {
        return unicode;
    }
    let skip: usize = labels[..labels.len() - keep]
        .iter()
        .map(|l| l.len() + 1)
        .sum();
    &unicode[skip..]
}

/// Lower case with the usual character swaps undone: digits for letters (`micros0ft`), `rn` for
/// `m`, `vv` for `w`.
fn fold(text: &str) -> String {
    let swapped: String = text
        .to_lowercase()
        .chars()
        .map(|c| match c {
            '0' => 'o',
            '1' => 'l',
            '3' => 'e',
            '4' => 'a',
            '5' => 's',
            '7' => 't',
            '8' => 'b',
            '@' => 'a',
            '$' => 's',
            other => other,
        })
        .collect();
    swapped.replace("rn", "m").replace("vv", "w")
}

/// Edits a name may be away from a protected one and still be a slip of it.
fn edits_allowed(label: &str) -> usize {
    if label.len() >= 9 { 2 } else { 1 }
}

fn bait_word(text: &str) -> Option<&'static str> {
    BAIT_WORDS.iter().copied().find(|word| text.contains(word))
}

fn bait(word: &str, place: &str) -> Signal {
    Signal {
        signal: "credential-bait",
        value: format!("\"{word}\" in {place}"),
        points: 10,
    }
}

/// A long name of characters with no pattern a person would type: high entropy and few vowels,
/// or digits mixed in.
fn looks_generated(label: &str) -> bool {
    let letters: Vec<char> = label.chars().filter(|c| *c != '-').collect();
    if letters.len() < 12 {
        return false;
    }
    let mut counts = std::collections::HashMap::new();
    for c in &letters {
        *counts.entry(*c).or_insert(0usize) += 1;
    }
    let n = letters.len() as f64;
    let entropy: f64 = counts
        .values()
        .map(|k| {
            let p = *k as f64 / n;
            -p * p.log2()
        })
        .sum();
    let vowels = letters.iter().filter(|c| "aeiou".contains(**c)).count() as f64 / n;
    let digits = letters.iter().filter(|c| c.is_ascii_digit()).count();
    entropy >= 3.5 && (vowels < 0.25 || digits >= 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heuristics() -> Heuristics {
        let mut brands = vec![Brand {
            name: "acme".into(),
            domains: vec!["acme-industries.com".into()],
        }];
        brands.extend(default_brands());
        Heuristics::new(brands)
    }

    fn domain_signals(name: &str) -> Vec<(&'static str, i32)> {
        let domain = DomainName::parse(name).expect("domain");
        heuristics()
            .domain(&domain)
            .into_iter()
            .map(|s| (s.signal, s.points))
            .collect()
    }

    fn url_signals(text: &str) -> Vec<Signal> {
        let Ok(scry_core::Observable::Url(url)) = scry_core::Observable::parse(text) else {
            panic!("{text} is not a URL");
        };
        heuristics().url(&url)
    }

    #[test]
    fn true_lookalikes_fire_with_a_reason() {
        for (name, signal, points) in [
            ("xn--pypal-4ve.com", "lookalike", 45),
            ("paypa1.com", "lookalike", 45),
            ("micros0ft.com", "lookalike", 45),
            ("rnicrosoft.com", "lookalike", 45),
            ("microsfot.com", "lookalike", 35),
            ("paypal.co", "lookalike", 20),
            ("acme-industrles.com", "lookalike", 35),
            ("paypal-account-verify.info", "brand-in-name", 30),
            ("login-micros0ft-365.com", "brand-in-name", 30),
            ("paypal.com.secure-login.net", "brand-in-subdomain", 30),
            ("secure-netflix-billing.top", "brand-in-name", 30),
        ] {
            let signals = domain_signals(name);
            assert!(
                signals.contains(&(signal, points)),
                "{name}: {signals:?} lacks {signal} {points}"
            );
        }
        let homoglyph = domain_signals("www.xn--pypal-4ve.com");
        assert!(homoglyph.contains(&("mixed-script", 20)), "{homoglyph:?}");
        let domain = DomainName::parse("xn--pypal-4ve.com").expect("domain");
        assert_eq!(
            heuristics().domain(&domain)[0].value,
            "xn--pypal-4ve.com imitates paypal.com (characters that read alike)"
        );
        assert!(domain_signals("secure-update.xyz").contains(&("suspicious-tld", 10)));
        assert!(domain_signals("secure-update.xyz").contains(&("credential-bait", 10)));
        assert!(domain_signals("xk7q9zvb2mw4tj8p.com").contains(&("dga-like", 15)));
    }

    #[test]
    fn a_brands_own_names_and_innocent_words_do_not_fire() {
        for name in [
            "login.microsoft.com",
            "www.paypal.com",
            "accounts.google.com",
            "login.microsoftonline.com",
            "s3.us-east-1.amazonaws.com",
            "vpn.acme-industries.com",
            "purchase-orders.com",
            "pineapple.com",
            "appleton.org",
            "stackoverflow.com",
            "wikipedia.org",
            "chasers.net",
            "example.com",
        ] {
            assert_eq!(domain_signals(name), [], "{name}");
        }
        assert!(
            url_signals("https://login.microsoftonline.com/common/oauth2/authorize").is_empty()
        );
        assert!(url_signals("https://www.paypal.com/signin?country=US").is_empty());
    }

    #[test]
    fn urls_add_their_paths_and_bare_addresses() {
        let signals = url_signals("http://paypal-account-verify.info/signin?session=8f3a");
        let names: Vec<&str> = signals.iter().map(|s| s.signal).collect();
        assert!(names.contains(&"brand-in-name"), "{signals:?}");
        assert!(names.contains(&"credential-bait"), "{signals:?}");
        let signals = url_signals("http://203.0.113.7/paypal/webscr/login.php");
        let names: Vec<&str> = signals.iter().map(|s| s.signal).collect();
        assert_eq!(
            names,
            ["ip-literal-url", "credential-bait", "brand-in-path"],
            "{signals:?}"
        );
    }
}
