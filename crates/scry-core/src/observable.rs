//! Observables: one indicator value, parsed, refanged and normalized, with its STIX type.
//!
//! [`Observable::parse`] is strict: the whole token must be one indicator. Free text goes through
//! [`crate::extract`] instead, which finds the tokens that are.

use std::fmt;
use std::net::IpAddr;
use std::sync::LazyLock;

use ipnet::IpNet;
use regex::Regex;

use crate::domain::{DomainClass, DomainError, DomainName};
use crate::ip::{self, IpClass};
use crate::refang::refang;

/// A normalized indicator.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Observable {
    Ip(IpAddr),
    /// A block; the network address is canonical (host bits cleared).
    Cidr(IpNet),
    Domain(DomainName),
    Url(UrlObservable),
    /// Recognized and reported, not enriched.
    Email {
        address: String,
        domain: DomainName,
    },
    /// Recognized and reported, not enriched.
    Asn(u32),
    /// A CVE identifier, upper-case. Recognized and reported, not enriched.
    Cve(String),
    /// A file hash, lower-case hex. Recognized and reported, not enriched.
    Hash {
        algorithm: HashAlgorithm,
        value: String,
    },
}

/// A URL with its host already classified.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UrlObservable {
    url: String,
    scheme: String,
    host: UrlHost,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UrlHost {
    Domain(DomainName),
    Ip(IpAddr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl HashAlgorithm {
    /// The algorithm name as STIX writes it in `hashes`.
    pub fn stix_name(self) -> &'static str {
        match self {
            HashAlgorithm::Md5 => "MD5",
            HashAlgorithm::Sha1 => "SHA-1",
            HashAlgorithm::Sha256 => "SHA-256",
            HashAlgorithm::Sha512 => "SHA-512",
        }
    }

    fn from_hex_len(len: usize) -> Option<HashAlgorithm> {
        match len {
            32 => Some(HashAlgorithm::Md5),
            40 => Some(HashAlgorithm::Sha1),
            64 => Some(HashAlgorithm::Sha256),
            128 => Some(HashAlgorithm::Sha512),
            _ => None,
        }
    }
}

/// Why a token is not an indicator. Messages name what was wrong so a person can fix the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty value")]
    Empty,
    #[error(
        "not a recognized indicator (expected an IP address, CIDR block, domain, URL, e-mail address, ASN, CVE id or file hash)"
    )]
    Unrecognized,
    #[error("invalid domain name: {0}")]
    Domain(#[from] DomainError),
    #[error("invalid CIDR block: {0}")]
    Cidr(String),
    #[error("invalid URL: {0}")]
    Url(String),
    #[error("unsupported URL scheme {0:?} (supported: http, https, ftp, ftps, ws, wss)")]
    UrlScheme(String),
    #[error("invalid e-mail address: {0}")]
    Email(String),
    #[error("ASN {0} is out of range (0 to 4294967295)")]
    AsnRange(String),
}

const URL_SCHEMES: &[&str] = &["http", "https", "ftp", "ftps", "ws", "wss"];

static CVE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^CVE-(\d{4})-(\d{4,})$").expect("valid pattern"));
static ASN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^AS(?:N)?\s?(\d+)$").expect("valid pattern"));
static SCHEME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([A-Za-z][A-Za-z0-9+.-]*)://").expect("valid pattern"));

impl Observable {
    /// Parses one token as exactly one indicator, undoing defanging first.
    pub fn parse(token: &str) -> Result<Observable, ParseError> {
        let refanged = refang(token.trim());
        // White space, control characters and quotes around a token all go at once: trimming
        // them in turn would leave `'` before a trailing NUL, which the URL parser then drops,
        // so the stored value would not read back as itself.
        let text = refanged.trim_matches(|c: char| {
            c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '<' | '>' | '`')
        });
        if text.is_empty() {
            return Err(ParseError::Empty);
        }
        if let Some(caps) = ASN.captures(text) {
            let number = &caps[1];
            return number
                .parse::<u32>()
                .map(Observable::Asn)
                .map_err(|_| ParseError::AsnRange(number.to_owned()));
        }
        if CVE.is_match(text) {
            return Ok(Observable::Cve(text.to_ascii_uppercase()));
        }
        if let Some(algorithm) = HashAlgorithm::from_hex_len(text.len())
            && text.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Ok(Observable::Hash {
                algorithm,
                value: text.to_ascii_lowercase(),
            });
        }
        if SCHEME.is_match(text) {
            return parse_url(text).map(Observable::Url);
        }
        if let Some(ip) = parse_ip(text) {
            return Ok(Observable::Ip(ip));
        }
        if let Some((local, domain)) = text.rsplit_once('@')
            && !text.contains('/')
        {
            return parse_email(local, domain);
        }
        if let Some((addr, len)) = text.split_once('/')
            && parse_ip(addr).is_some()
            && len.bytes().all(|b| b.is_ascii_digit())
        {
            return text
                .parse::<IpNet>()
                .map(|net| Observable::Cidr(canonical_net(net)))
                .map_err(|_| {
                    ParseError::Cidr(format!("{text:?}: prefix length {len} is too long"))
                });
        }
        if text.contains('/') || text.contains('?') {
            // `evil.com/login.php`: a URL written without its scheme. Its host must be a name or
            // a full address: `9.8/10`, `2.4/2.5` and `12/05/2026` are a score, versions and a
            // date, not the short IPv4 forms a browser would read into them (`http://9.0.0.8/10`).
            let host = text.split(['/', '?', '#']).next().unwrap_or("");
            let host = match host.rsplit_once(':') {
                Some((name, port)) if port.parse::<u16>().is_ok() => name,
                _ => host,
            };
            if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') && parse_ip(host).is_none() {
                return Err(ParseError::Unrecognized);
            }
            let url = parse_url(&format!("http://{text}"))?;
            return Ok(Observable::Url(url));
        }
        // `example.com:8443`: a host with a port names the host.
        let host = match text.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => host,
            _ => text,
        };
        if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') && !host.is_empty() {
            // Digits and dots only, but not a valid address: say so rather than "numeric TLD".
            return Err(ParseError::Unrecognized);
        }
        match DomainName::parse(host) {
            Ok(domain) => Ok(Observable::Domain(domain)),
            Err(DomainError::SingleLabel(_)) | Err(DomainError::InvalidCharacter(_))
                if !host.contains('.') =>
            {
                Err(ParseError::Unrecognized)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The STIX 2.1 object type this observable maps to.
    pub fn stix_type(&self) -> &'static str {
        match self {
            Observable::Ip(IpAddr::V4(_)) => "ipv4-addr",
            Observable::Ip(IpAddr::V6(_)) => "ipv6-addr",
            Observable::Cidr(IpNet::V4(_)) => "ipv4-addr",
            Observable::Cidr(IpNet::V6(_)) => "ipv6-addr",
            Observable::Domain(_) => "domain-name",
            Observable::Url(_) => "url",
            Observable::Email { .. } => "email-addr",
            Observable::Asn(_) => "autonomous-system",
            Observable::Cve(_) => "vulnerability",
            Observable::Hash { .. } => "file",
        }
    }

    /// The canonical value, as it is written in output and keyed in stores.
    pub fn value(&self) -> String {
        self.to_string()
    }

    /// The address class of the IP, block or URL host; `None` for other kinds.
    pub fn ip_class(&self) -> Option<IpClass> {
        match self {
            Observable::Ip(ip) => Some(ip::classify(*ip)),
            Observable::Cidr(net) => Some(ip::classify_net(*net)),
            Observable::Url(UrlObservable {
                host: UrlHost::Ip(ip),
                ..
            }) => Some(ip::classify(*ip)),
            _ => None,
        }
    }

    /// The domain this observable names or lives under, if any.
    pub fn domain(&self) -> Option<&DomainName> {
        match self {
            Observable::Domain(d) => Some(d),
            Observable::Url(UrlObservable {
                host: UrlHost::Domain(d),
                ..
            }) => Some(d),
            Observable::Email { domain, .. } => Some(domain),
            _ => None,
        }
    }

    /// The domain class of the name, URL host or e-mail domain; `None` for other kinds.
    pub fn domain_class(&self) -> Option<DomainClass> {
        self.domain().map(DomainName::class)
    }

    /// True for the kinds scry enriches (addresses, blocks, domains and URLs).
    pub fn is_enrichable(&self) -> bool {
        matches!(
            self,
            Observable::Ip(_) | Observable::Cidr(_) | Observable::Domain(_) | Observable::Url(_)
        )
    }
}

impl fmt::Display for Observable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Observable::Ip(ip) => write!(f, "{ip}"),
            Observable::Cidr(net) => write!(f, "{net}"),
            Observable::Domain(d) => f.write_str(d.as_str()),
            Observable::Url(u) => f.write_str(&u.url),
            Observable::Email { address, .. } => f.write_str(address),
            Observable::Asn(n) => write!(f, "AS{n}"),
            Observable::Cve(id) => f.write_str(id),
            Observable::Hash { value, .. } => f.write_str(value),
        }
    }
}

impl UrlObservable {
    pub fn as_str(&self) -> &str {
        &self.url
    }
    pub fn scheme(&self) -> &str {
        &self.scheme
    }
    pub fn host(&self) -> &UrlHost {
        &self.host
    }
    /// The port, when it is not the scheme's default.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The URL as it may be shown to an outside service: never with a user name or password,
    /// never with its fragment, and with its query only when `keep_query` (a query often carries
    /// a victim's address or a session token).
    pub fn for_outside(&self, keep_query: bool) -> String {
        let Ok(mut url) = url::Url::parse(&self.url) else {
            return self.url.clone();
        };
        // Both fail only for URLs that cannot have credentials, which then have none.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_fragment(None);
        if !keep_query {
            url.set_query(None);
        }
        url.into()
    }
}

/// Parses an address, accepting `[v6]`, a zone suffix (`fe80::1%eth0`), and `host:port` forms.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let unbracketed = text.strip_prefix('[').map_or(text, |rest| {
        rest.split_once(']').map_or(rest, |(inside, tail)| {
            if tail.is_empty()
                || tail
                    .strip_prefix(':')
                    .is_some_and(|p| p.parse::<u16>().is_ok())
            {
                inside
            } else {
                text
            }
        })
    });
    let without_zone = unbracketed
        .split_once('%')
        .map_or(unbracketed, |(addr, _)| addr);
    if let Ok(ip) = without_zone.parse::<IpAddr>() {
        return Some(ip::canonical(ip));
    }
    // IPv4 with a port.
    let (addr, port) = without_zone.rsplit_once(':')?;
    if port.parse::<u16>().is_ok()
        && let Ok(IpAddr::V4(v4)) = addr.parse::<IpAddr>()
    {
        return Some(IpAddr::V4(v4));
    }
    None
}

fn canonical_net(net: IpNet) -> IpNet {
    let net = net.trunc();
    if let IpNet::V6(v6) = net
        && let Some(v4) = v6.network().to_ipv4_mapped()
        && v6.prefix_len() >= 96
    {
        return IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).expect("length fits");
    }
    net
}

fn parse_url(text: &str) -> Result<UrlObservable, ParseError> {
    let mut parsed =
        url::Url::parse(text).map_err(|e| ParseError::Url(format!("{text:?}: {e}")))?;
    if let Some(url::Host::Ipv6(v6)) = parsed.host()
        && let Some(v4) = v6.to_ipv4_mapped()
    {
        parsed
            .set_ip_host(IpAddr::V4(v4))
            .map_err(|()| ParseError::Url(format!("{text:?}: cannot set host")))?;
    }
    let scheme = parsed.scheme().to_owned();
    if !URL_SCHEMES.contains(&scheme.as_str()) {
        return Err(ParseError::UrlScheme(scheme));
    }
    strictly_encoded(&mut parsed);
    let host = match parsed.host() {
        Some(url::Host::Domain(name)) => UrlHost::Domain(DomainName::parse(name)?),
        Some(url::Host::Ipv4(v4)) => UrlHost::Ip(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => UrlHost::Ip(ip::canonical(IpAddr::V6(v6))),
        None => return Err(ParseError::Url(format!("{text:?} has no host"))),
    };
    Ok(UrlObservable {
        url: parsed.to_string(),
        scheme,
        host,
        port: parsed.port(),
    })
}

/// Percent-encodes what RFC 3986 does not allow in a URL's path, query and fragment and the
/// WHATWG URL Standard leaves as written (`[`, `]`, `|`, `^`, `{`, `}`, `\`, a `%` not followed
/// by two hex digits), so every stored URL is a valid URI (STIX `url` values must be). Escapes
/// already there stay, so a stored URL reads back as itself.
fn strictly_encoded(url: &mut url::Url) {
    fn encode(part: &str) -> String {
        let bytes = part.as_bytes();
        let mut out = String::with_capacity(part.len());
        for (i, &b) in bytes.iter().enumerate() {
            let escape = b == b'%'
                && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if escape || b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?".contains(&b) {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }
    let path = encode(url.path());
    if path != url.path() {
        url.set_path(&path);
    }
    if let Some(query) = url.query().map(encode)
        && Some(query.as_str()) != url.query()
    {
        url.set_query(Some(&query));
    }
    if let Some(fragment) = url.fragment().map(encode)
        && Some(fragment.as_str()) != url.fragment()
    {
        url.set_fragment(Some(&fragment));
    }
}

fn parse_email(local: &str, domain: &str) -> Result<Observable, ParseError> {
    let valid_local = !local.is_empty()
        && local.len() <= 64
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
        && !local.starts_with('.')
        && !local.ends_with('.');
    if !valid_local {
        return Err(ParseError::Email(format!(
            "local part {local:?} is not valid"
        )));
    }
    let domain = DomainName::parse(domain).map_err(|e| ParseError::Email(e.to_string()))?;
    Ok(Observable::Email {
        address: format!("{local}@{}", domain.as_str()),
        domain,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Observable {
        Observable::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn norm(s: &str) -> (String, &'static str) {
        let o = parse(s);
        (o.value(), o.stix_type())
    }

    /// Found by fuzzing: a quote before trailing control characters was kept, the URL parser
    /// then dropped the controls, and the stored value no longer read back as itself.
    #[test]
    fn values_read_back_as_themselves_whatever_surrounds_the_token() {
        for token in [
            "b.acoi.ns//i\0\0'\0\0\t\t",
            "'evil.example.com/x'\u{1}",
            "\0\"http://evil.example.com/a\"\0",
            " <45.155.205.233>\u{7f}",
        ] {
            let value = parse(token).value();
            assert_eq!(parse(&value).value(), value, "from {token:?}");
            assert!(
                !value.ends_with(['\'', '"', '>']),
                "{value:?} from {token:?}"
            );
        }
    }

    #[test]
    fn addresses_are_canonical() {
        assert_eq!(norm("8.8.8.8"), ("8.8.8.8".into(), "ipv4-addr"));
        assert_eq!(norm("::ffff:8.8.4.4"), ("8.8.4.4".into(), "ipv4-addr"));
        assert_eq!(norm("2001:DB8:0:0::1"), ("2001:db8::1".into(), "ipv6-addr"));
        assert_eq!(
            norm("[2606:4700::1111]"),
            ("2606:4700::1111".into(), "ipv6-addr")
        );
        assert_eq!(
            norm("[2606:4700::1111]:443"),
            ("2606:4700::1111".into(), "ipv6-addr")
        );
        assert_eq!(norm("fe80::1%eth0"), ("fe80::1".into(), "ipv6-addr"));
        assert_eq!(norm("1.2.3.4:8080"), ("1.2.3.4".into(), "ipv4-addr"));
        assert_eq!(norm("1.2.3[.]4"), ("1.2.3.4".into(), "ipv4-addr"));
    }

    #[test]
    fn blocks_clear_host_bits() {
        assert_eq!(norm("10.1.2.3/8"), ("10.0.0.0/8".into(), "ipv4-addr"));
        assert_eq!(
            norm("2001:db8::1/32"),
            ("2001:db8::/32".into(), "ipv6-addr")
        );
        assert_eq!(
            norm("::ffff:10.0.0.0/104"),
            ("10.0.0.0/8".into(), "ipv4-addr")
        );
        assert!(matches!(
            Observable::parse("10.0.0.0/33"),
            Err(ParseError::Cidr(_))
        ));
    }

    #[test]
    fn urls_are_normalized() {
        assert_eq!(
            norm("HXXPS://Evil[.]COM:443/Login?x=1"),
            ("https://evil.com/Login?x=1".into(), "url")
        );
        assert_eq!(
            norm("http://evil.com:80"),
            ("http://evil.com/".into(), "url")
        );
        assert_eq!(
            norm("http://evil.com:8080/a"),
            ("http://evil.com:8080/a".into(), "url")
        );
        assert_eq!(
            norm("evil.com/login.php"),
            ("http://evil.com/login.php".into(), "url")
        );
        assert_eq!(
            norm("http://bücher.de/x"),
            ("http://xn--bcher-kva.de/x".into(), "url")
        );
        assert_eq!(
            norm("http://[::ffff:1.2.3.4]/"),
            ("http://1.2.3.4/".into(), "url")
        );
        let Observable::Url(u) = parse("https://1.2.3.4/x") else {
            panic!("url")
        };
        assert_eq!(u.host(), &UrlHost::Ip("1.2.3.4".parse().expect("ip")));
        assert!(matches!(
            Observable::parse("javascript://x"),
            Err(ParseError::UrlScheme(_))
        ));
        assert!(matches!(
            Observable::parse("http://exa mple.com"),
            Err(ParseError::Url(_))
        ));
    }

    /// What RFC 3986 does not allow is percent-encoded (the STIX validator refuses a URL with a
    /// stray `%` or `[`), escapes already there stay, and a stored URL reads back as itself.
    #[test]
    fn urls_are_valid_uris() {
        for (written, stored) in [
            ("http://evil.com/p[1]", "http://evil.com/p%5B1%5D"),
            ("http://evil.com/a%zz/b%4", "http://evil.com/a%25zz/b%254"),
            ("http://evil.com/a%41%2f", "http://evil.com/a%41%2f"),
            (
                "http://evil.com/x?q=a|b^c{d}&e=[f]",
                "http://evil.com/x?q=a%7Cb%5Ec%7Bd%7D&e=%5Bf%5D",
            ),
            ("http://evil.com/x#frag[1]", "http://evil.com/x#frag%5B1%5D"),
            (
                "http://evil.com/ok/path;p=1?a=b&c=d",
                "http://evil.com/ok/path;p=1?a=b&c=d",
            ),
        ] {
            assert_eq!(norm(written), (stored.to_owned(), "url"), "{written}");
            assert_eq!(norm(stored), (stored.to_owned(), "url"), "{stored} again");
        }
    }

    #[test]
    fn reported_kinds_are_recognized() {
        assert_eq!(
            norm("User@Evil[.]com"),
            ("User@evil.com".into(), "email-addr")
        );
        assert_eq!(norm("AS13335"), ("AS13335".into(), "autonomous-system"));
        assert_eq!(norm("asn 64512"), ("AS64512".into(), "autonomous-system"));
        assert_eq!(
            norm("cve-2021-44228"),
            ("CVE-2021-44228".into(), "vulnerability")
        );
        assert_eq!(
            norm("D41D8CD98F00B204E9800998ECF8427E"),
            ("d41d8cd98f00b204e9800998ecf8427e".into(), "file")
        );
        assert_eq!(parse(&"a".repeat(64)).stix_type(), "file");
        assert!(matches!(
            Observable::parse("AS99999999999"),
            Err(ParseError::AsnRange(_))
        ));
    }

    #[test]
    fn junk_is_unrecognized_with_a_reason() {
        assert_eq!(Observable::parse(""), Err(ParseError::Empty));
        assert_eq!(Observable::parse("hello"), Err(ParseError::Unrecognized));
        assert_eq!(
            Observable::parse("1.2.3.999"),
            Err(ParseError::Unrecognized)
        );
        assert_eq!(
            Observable::parse("300.1.1.1"),
            Err(ParseError::Unrecognized)
        );
        assert!(matches!(
            Observable::parse("bad_.-x.com"),
            Err(ParseError::Domain(_))
        ));
    }
}
