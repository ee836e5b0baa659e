//! Deterministic synthetic Criminal IP data: the same indicator always gets the same report, and
//! a population of indicators shows a realistic spread of verdicts, flags, services and CVEs.
//!
//! Everything is derived from SHA-256 of (seed, indicator), so reports are stable across runs and
//! machines. Two naming conventions let tests reach rare paths on purpose: a domain whose first
//! label starts with `nx-` does not exist (scan status −2) and one starting with `scanfail-` fails
//! to scan (status −1).

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A small deterministic generator seeded from a hash.
pub(crate) struct Dice {
    state: u64,
}

impl Dice {
    pub(crate) fn new(seed: u64, what: &str) -> Dice {
        let digest = Sha256::digest(format!("{seed}\u{1f}{what}").as_bytes());
        Dice {
            state: u64::from_le_bytes(digest[..8].try_into().expect("8 bytes")),
        }
    }

    pub(crate) fn from_state(state: u64) -> Dice {
        Dice { state }
    }

    /// splitmix64.
    pub(crate) fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const LEVELS: [&str; 5] = ["Safe", "Low", "Moderate", "Dangerous", "Critical"];

struct Network {
    asn: u32,
    as_name: &'static str,
    org: &'static str,
    country: &'static str,
    city: &'static str,
    region: &'static str,
    lat: f64,
    lon: f64,
    hosting: bool,
}

const NETWORKS: &[Network] = &[
    Network {
        asn: 13335,
        as_name: "CLOUDFLARENET",
        org: "Cloudflare, Inc.",
        country: "us",
        city: "San Francisco",
        region: "California",
        lat: 37.7749,
        lon: -122.4194,
        hosting: true,
    },
    Network {
        asn: 16509,
        as_name: "AMAZON-02",
        org: "Amazon.com, Inc.",
        country: "us",
        city: "Ashburn",
        region: "Virginia",
        lat: 39.0438,
        lon: -77.4874,
        hosting: true,
    },
    Network {
        asn: 14061,
        as_name: "DIGITALOCEAN-ASN",
        org: "DigitalOcean, LLC",
        country: "nl",
        city: "Amsterdam",
        region: "North Holland",
        lat: 52.3676,
        lon: 4.9041,
        hosting: true,
    },
    Network {
        asn: 9009,
        as_name: "M247",
        org: "M247 Europe SRL",
        country: "ro",
        city: "Bucharest",
        region: "Bucharest",
        lat: 44.4268,
        lon: 26.1025,
        hosting: true,
    },
    Network {
        asn: 16276,
        as_name: "OVH",
        org: "OVH SAS",
        country: "fr",
        city: "Roubaix",
        region: "Hauts-de-France",
        lat: 50.6942,
        lon: 3.1746,
        hosting: true,
    },
    Network {
        asn: 24940,
        as_name: "HETZNER-AS",
        org: "Hetzner Online GmbH",
        country: "de",
        city: "Falkenstein",
        region: "Saxony",
        lat: 50.4779,
        lon: 12.3713,
        hosting: true,
    },
    Network {
        asn: 4766,
        as_name: "KIXS-AS-KR",
        org: "Korea Telecom",
        country: "kr",
        city: "Seoul",
        region: "Seoul",
        lat: 37.5665,
        lon: 126.978,
        hosting: false,
    },
    Network {
        asn: 45090,
        as_name: "TENCENT-NET-AP",
        org: "Shenzhen Tencent Computer Systems Company Limited",
        country: "cn",
        city: "Shenzhen",
        region: "Guangdong",
        lat: 22.5431,
        lon: 114.0579,
        hosting: true,
    },
    Network {
        asn: 20473,
        as_name: "AS-CHOOPA",
        org: "The Constant Company, LLC",
        country: "us",
        city: "Piscataway",
        region: "New Jersey",
        lat: 40.5549,
        lon: -74.4643,
        hosting: true,
    },
    Network {
        asn: 49505,
        as_name: "SELECTEL",
        org: "Selectel Ltd.",
        country: "ru",
        city: "Saint Petersburg",
        region: "Saint Petersburg",
        lat: 59.9343,
        lon: 30.3351,
        hosting: true,
    },
    Network {
        asn: 200651,
        as_name: "FLOKINET",
        org: "FlokiNET Ltd",
        country: "is",
        city: "Reykjavik",
        region: "Capital Region",
        lat: 64.1466,
        lon: -21.9426,
        hosting: true,
    },
    Network {
        asn: 7922,
        as_name: "COMCAST-7922",
        org: "Comcast Cable Communications, LLC",
        country: "us",
        city: "Chicago",
        region: "Illinois",
        lat: 41.8781,
        lon: -87.6298,
        hosting: false,
    },
];

/// A CVE on a product: (id, CVSS v3, CVSS v2, description).
type Cve = (&'static str, f64, f64, &'static str);

struct Service {
    port: u16,
    socket: &'static str,
    protocol: &'static str,
    product: &'static str,
    version: &'static str,
    banner: &'static str,
    tags: &'static [&'static str],
    /// (CVE, CVSS v3, CVSS v2, description)
    cves: &'static [Cve],
}

const SERVICES: &[Service] = &[
    Service {
        port: 22,
        socket: "tcp",
        protocol: "SSH",
        product: "OpenSSH",
        version: "8.2p1",
        banner: "SSH-2.0-OpenSSH_8.2p1 Ubuntu-4ubuntu0.5",
        tags: &[],
        cves: &[
            (
                "CVE-2023-38408",
                9.8,
                7.5,
                "The PKCS#11 feature in ssh-agent in OpenSSH before 9.3p2 has an insufficiently trustworthy search path",
            ),
            (
                "CVE-2020-15778",
                7.8,
                6.8,
                "scp in OpenSSH through 8.3p1 allows command injection",
            ),
        ],
    },
    Service {
        port: 80,
        socket: "tcp",
        protocol: "HTTP",
        product: "nginx",
        version: "1.18.0",
        banner: "HTTP/1.1 200 OK\r\nServer: nginx/1.18.0 (Ubuntu)\r\nContent-Type: text/html\r\n\r\n<html><head><title>Welcome to nginx!</title></head></html>",
        tags: &[],
        cves: &[(
            "CVE-2021-23017",
            7.7,
            6.8,
            "A security issue in nginx resolver was identified, which might allow an attacker to cause 1-byte memory overwrite",
        )],
    },
    Service {
        port: 443,
        socket: "tcp",
        protocol: "HTTPS",
        product: "nginx",
        version: "1.18.0",
        banner: "HTTP/1.1 200 OK\r\nServer: nginx/1.18.0\r\n\r\nTLS Certificate\nIssuer Dn: C=US, O=Let's Encrypt, CN=R3\nSubject Dn: CN=www.example-shop.com\nFingerprint Sha256: 5f1c3a8e9b7d2c4f6a0e1b3d5c7f9a2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d2f4a",
        tags: &[],
        cves: &[(
            "CVE-2021-23017",
            7.7,
            6.8,
            "A security issue in nginx resolver was identified, which might allow an attacker to cause 1-byte memory overwrite",
        )],
    },
    Service {
        port: 3389,
        socket: "tcp",
        protocol: "RDP",
        product: "Microsoft Terminal Services",
        version: "N/A",
        banner: "Remote Desktop Protocol\nOS: Windows Server 2019\nNetBIOS Domain Name: WORKGROUP",
        tags: &[],
        cves: &[],
    },
    Service {
        port: 445,
        socket: "tcp",
        protocol: "SMB",
        product: "Samba",
        version: "4.9.5",
        banner: "SMB Status: Authentication disabled\nOS: Unix",
        tags: &[],
        cves: &[(
            "CVE-2021-44142",
            9.9,
            9.0,
            "The Samba vfs_fruit module uses extended file attributes (EA) with an out-of-bounds heap read and write",
        )],
    },
    Service {
        port: 21,
        socket: "tcp",
        protocol: "FTP",
        product: "vsftpd",
        version: "2.3.4",
        banner: "220 (vsFTPd 2.3.4)",
        tags: &[],
        cves: &[(
            "CVE-2011-2523",
            9.8,
            10.0,
            "vsftpd 2.3.4 downloaded between 20110630 and 20110703 contains a backdoor",
        )],
    },
    Service {
        port: 25,
        socket: "tcp",
        protocol: "SMTP",
        product: "Exim",
        version: "4.92",
        banner: "220 mail.example-host.net ESMTP Exim 4.92",
        tags: &[],
        cves: &[(
            "CVE-2019-15846",
            9.8,
            10.0,
            "Exim before 4.92.2 allows remote attackers to execute arbitrary code as root via a trailing backslash",
        )],
    },
    Service {
        port: 3306,
        socket: "tcp",
        protocol: "MySQL",
        product: "MySQL",
        version: "5.7.33",
        banner: "5.7.33-0ubuntu0.18.04.1",
        tags: &[],
        cves: &[(
            "CVE-2021-2307",
            6.1,
            3.3,
            "Vulnerability in the MySQL Server product of Oracle MySQL (component: Packaging)",
        )],
    },
    Service {
        port: 8080,
        socket: "tcp",
        protocol: "HTTP",
        product: "Apache Tomcat",
        version: "9.0.30",
        banner: "HTTP/1.1 200 \r\nContent-Type: text/html;charset=UTF-8\r\n\r\n<title>Apache Tomcat/9.0.30</title>",
        tags: &["Directory Listing"],
        cves: &[(
            "CVE-2020-1938",
            9.8,
            7.5,
            "When using the Apache JServ Protocol (AJP), care must be taken when trusting incoming connections (Ghostcat)",
        )],
    },
    Service {
        port: 5900,
        socket: "tcp",
        protocol: "VNC",
        product: "RealVNC",
        version: "4.1.1",
        banner: "RFB 003.008",
        tags: &[],
        cves: &[(
            "CVE-2006-2369",
            9.8,
            7.5,
            "RealVNC 4.1.1 allows remote attackers to bypass authentication via a request in which the client specifies an insecure security type",
        )],
    },
    Service {
        port: 23,
        socket: "tcp",
        protocol: "Telnet",
        product: "BusyBox telnetd",
        version: "N/A",
        banner: "\r\nlogin: ",
        tags: &[],
        cves: &[],
    },
    Service {
        port: 53,
        socket: "udp",
        protocol: "DNS",
        product: "dnsmasq",
        version: "2.80",
        banner: "dnsmasq-2.80",
        tags: &[],
        cves: &[(
            "CVE-2020-25681",
            8.1,
            6.8,
            "A flaw was found in dnsmasq before 2.83: a heap-based buffer overflow in sort_rrset()",
        )],
    },
];

const C2_SERVICES: &[Service] = &[
    Service {
        port: 50050,
        socket: "tcp",
        protocol: "HTTPS",
        product: "Cobalt Strike Team Server",
        version: "4.x",
        banner: "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\nJARM: 07d14d16d21d21d07c42d41d00041d24a458a375eef0c576d23a7bab9a9fb1",
        tags: &["Cobalt Strike", "C2"],
        cves: &[],
    },
    Service {
        port: 7443,
        socket: "tcp",
        protocol: "HTTPS",
        product: "Mythic",
        version: "3.2",
        banner: "HTTP/1.1 200 OK\r\n\r\n<title>Mythic</title>",
        tags: &["c2_mythic"],
        cves: &[],
    },
    Service {
        port: 8443,
        socket: "tcp",
        protocol: "HTTPS",
        product: "Sliver",
        version: "1.5",
        banner: "HTTP/1.1 404 Not Found",
        tags: &["c2_sliver"],
        cves: &[],
    },
];

const CATEGORY_SOURCES: &[&str] = &[
    "AbuseIPDB",
    "MISP",
    "blocklist.de",
    "Criminal IP Honeypot",
    "twitter.com/malwrhunterteam",
];

/// What kind of host an IP is made to look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Profile {
    Benign,
    Hosting,
    Scanner,
    Anonymizer,
    CommandAndControl,
    Vulnerable,
}

fn profile(dice: &mut Dice) -> Profile {
    match dice.below(100) {
        0..=44 => Profile::Benign,
        45..=64 => Profile::Hosting,
        65..=74 => Profile::Scanner,
        75..=84 => Profile::Anonymizer,
        85..=92 => Profile::CommandAndControl,
        _ => Profile::Vulnerable,
    }
}

fn timestamp(days_ago: u64, dice: &mut Dice) -> String {
    // A fixed reference day keeps reports identical across runs: 2026-11-01.
    let day = 20_393 - days_ago as i64;
    let (y, m, d) = scry_core::calendar::civil_from_days(day);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        dice.below(24),
        dice.below(60),
        dice.below(60)
    )
}

/// Scores, flags, services and CVEs for one IP, shared by every IP endpoint.
pub(crate) struct IpFacts {
    inbound: usize,
    outbound: usize,
    flags: Vec<(&'static str, bool)>,
    network: &'static Network,
    services: Vec<&'static Service>,
    categories: Vec<&'static str>,
    ids_hits: u64,
    domains: Vec<String>,
}

pub(crate) fn ip_facts(seed: u64, ip: &str) -> IpFacts {
    let mut dice = Dice::new(seed, ip);
    let kind = profile(&mut dice);
    let network = dice.pick(NETWORKS);
    let (inbound, outbound) = match kind {
        Profile::Benign => (dice.below(2) as usize, dice.below(2) as usize),
        Profile::Hosting => (1 + dice.below(2) as usize, dice.below(3) as usize),
        Profile::Scanner => (3 + dice.below(2) as usize, 2 + dice.below(2) as usize),
        Profile::Anonymizer => (2 + dice.below(2) as usize, 3 + dice.below(2) as usize),
        Profile::CommandAndControl => (2 + dice.below(2) as usize, 4),
        Profile::Vulnerable => (2 + dice.below(2) as usize, 1 + dice.below(3) as usize),
    };
    let anonymizer = kind == Profile::Anonymizer;
    let tor = anonymizer && dice.chance(0.4);
    let vpn = anonymizer && !tor && dice.chance(0.7);
    let flags = vec![
        ("is_vpn", vpn),
        ("is_proxy", anonymizer && !tor && !vpn),
        ("is_cloud", network.hosting && dice.chance(0.5)),
        ("is_tor", tor),
        ("is_hosting", network.hosting && kind != Profile::Benign),
        ("is_mobile", !network.hosting && dice.chance(0.2)),
        (
            "is_darkweb",
            kind == Profile::CommandAndControl && dice.chance(0.3),
        ),
        ("is_scanner", kind == Profile::Scanner),
        (
            "is_snort",
            matches!(kind, Profile::Scanner | Profile::CommandAndControl) && dice.chance(0.6),
        ),
        ("is_anonymous_vpn", vpn && dice.chance(0.5)),
    ];
    let mut services: Vec<&'static Service> = Vec::new();
    let count = match kind {
        Profile::Benign => dice.below(3),
        Profile::Vulnerable => 2 + dice.below(4),
        _ => 1 + dice.below(3),
    };
    for _ in 0..count {
        let service = dice.pick(SERVICES);
        if !services.iter().any(|s| s.port == service.port) {
            services.push(service);
        }
    }
    if kind == Profile::CommandAndControl {
        services.push(dice.pick(C2_SERVICES));
    }
    services.sort_by_key(|s| s.port);
    let categories: Vec<&'static str> = match kind {
        Profile::Scanner => vec!["scanner"],
        Profile::Anonymizer if tor => vec!["tor"],
        Profile::Anonymizer if vpn => vec!["vpn"],
        Profile::Anonymizer => vec!["proxy"],
        Profile::CommandAndControl => vec!["malware", "MISP"],
        Profile::Hosting if dice.chance(0.3) => vec!["cloud service"],
        _ => vec![],
    };
    let ids_hits = if flags[8].1 { 1 + dice.below(4) } else { 0 };
    let domains = (0..dice.below(4))
        .map(|i| format!("host{}-{}.example-{}.net", i, dice.below(1000), network.asn))
        .collect();
    IpFacts {
        inbound,
        outbound,
        flags,
        network,
        services,
        categories,
        ids_hits,
        domains,
    }
}

fn section(items: Vec<Value>) -> Value {
    json!({ "count": items.len(), "data": items })
}

fn vulnerabilities(facts: &IpFacts) -> Vec<(&'static Service, &'static Cve)> {
    facts
        .services
        .iter()
        .flat_map(|s| s.cves.iter().map(move |c| (*s, c)))
        .collect()
}

/// `GET /v1/asset/ip/report` (flat envelope, string scores, `issues`).
pub(crate) fn ip_report(seed: u64, ip: &str, full: bool) -> Value {
    let facts = ip_facts(seed, ip);
    let mut dice = Dice::new(seed, &format!("report:{ip}"));
    let n = facts.network;
    let mut ports: Vec<Value> = facts
        .services
        .iter()
        .map(|s| {
            json!({
                "open_port_no": s.port, "socket": s.socket, "protocol": s.protocol,
                "app_name": s.product, "app_version": s.version, "banner": s.banner,
                "port_status": "open", "dns_names": null, "sdn_common_name": null, "ssl_info_raw": null,
                "technologies": [{"tech_name": s.product, "tech_version": s.version, "tech_logo_url": null}],
                "tags": s.tags, "is_vulnerability": !s.cves.is_empty(),
                "confirmed_time": timestamp(dice.below(20), &mut dice),
            })
        })
        .collect();
    // Reports repeat older scans of the same port; clients must keep the newest.
    if let Some(first) = facts.services.first() {
        ports.push(json!({
            "open_port_no": first.port, "socket": first.socket, "protocol": first.protocol,
            "app_name": first.product, "app_version": "N/A", "banner": "", "port_status": "open",
            "tags": [], "is_vulnerability": null, "confirmed_time": timestamp(200 + dice.below(100), &mut dice),
        }));
    }
    if !full {
        ports.truncate(20);
    }
    let vulns: Vec<Value> = vulnerabilities(&facts)
        .iter()
        .map(|(s, (cve, v3, v2, text))| {
            json!({
                "cve_id": cve, "cve_description": text,
                "cvssv2_vector": "AV:N/AC:L/Au:N/C:P/I:P/A:P", "cvssv2_score": v2,
                "cvssv3_vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "cvssv3_score": v3,
                "list_cwe": [{"cwe_name": "CWE-20"}], "app_name": s.product, "app_version": s.version,
                "open_port_no": [{"port": s.port, "socket": s.socket}], "vendor": s.product, "type": "remote", "is_vuln": true,
            })
        })
        .collect();
    let mut report = json!({
        "ip": ip,
        "status": 200,
        "score": { "inbound": LEVELS[facts.inbound], "outbound": LEVELS[facts.outbound] },
        "issues": facts.flags.iter().map(|(k, v)| ((*k).to_owned(), Value::Bool(*v))).collect::<serde_json::Map<_, _>>(),
        "user_search_count": dice.below(500),
        "protected_ip": section(vec![]),
        "domain": section(facts.domains.iter().map(|d| json!({"domain": d, "ip_type": "A", "registrar": "NameCheap, Inc.", "email": "abuse@namecheap.com", "created_date": "2021-03-04", "confirmed_time": timestamp(dice.below(60), &mut dice)})).collect()),
        "whois": section(vec![json!({
            "as_name": n.as_name, "as_no": n.asn, "city": n.city, "region": n.region, "org_name": n.org,
            "postal_code": format!("{:05}", dice.below(99_999)), "latitude": n.lat, "longitude": n.lon,
            "org_country_code": n.country, "confirmed_time": timestamp(dice.below(30), &mut dice),
        })]),
        "hostname": section(facts.domains.first().map(|d| vec![json!({"domain_name_rep": d, "domain_name_full": d, "confirmed_time": timestamp(dice.below(30), &mut dice)})]).unwrap_or_default()),
        "ids": section((0..facts.ids_hits).map(|i| json!({"classification": if i % 2 == 0 { "Attempted Administrator Privilege Gain" } else { "Potentially Bad Traffic" }, "url": "https://www.snort.org", "message": "ET SCAN Suspicious inbound to MSSQL port 1433", "source_system": "snort", "confirmed_time": timestamp(dice.below(30), &mut dice)})).collect()),
        "vpn": section(if facts.flags[0].1 { vec![json!({"vpn_name": "NordVPN", "vpn_url": "https://nordvpn.com", "vpn_source_url": "https://nordvpn.com/servers", "socket_type": "udp", "confirmed_time": timestamp(dice.below(30), &mut dice)})] } else { vec![] }),
        "anonymous_vpn": section(vec![]),
        "webcam": section(vec![]),
        "honeypot": section(vec![]),
        "ip_category": section(facts.categories.iter().map(|c| json!({"type": c, "detect_source": *dice.pick(CATEGORY_SOURCES), "confirmed_time": timestamp(dice.below(30), &mut dice)})).collect()),
        "port": section(ports),
        "vulnerability": section(vulns),
        "mobile": section(vec![]),
    });
    if dice.chance(0.1)
        && let Some(row) = report.pointer_mut("/whois/data/0")
    {
        // Some rows carry `city` as an object or empty; clients must cope.
        row["city"] = json!({});
    }
    report
}

/// `GET /v1/ip/data`: the 2022 shape, with integer scores and `tags` instead of `issues`.
pub(crate) fn legacy_ip_data(seed: u64, ip: &str) -> Value {
    let mut report = ip_report(seed, ip, true);
    let facts = ip_facts(seed, ip);
    report["score"] = json!({ "inbound": facts.inbound + 1, "outbound": facts.outbound + 1 });
    let mut tags = report["issues"].take();
    if let Some(map) = tags.as_object_mut() {
        map.remove("is_anonymous_vpn");
    }
    report.as_object_mut().expect("object").remove("issues");
    report["tags"] = tags;
    report
}

/// `GET /v1/feature/ip/malicious-info`.
pub(crate) fn malicious_info(seed: u64, ip: &str) -> Value {
    let facts = ip_facts(seed, ip);
    let remote = facts
        .services
        .iter()
        .any(|s| matches!(s.protocol, "RDP" | "VNC" | "Telnet" | "SSH"));
    let ports: Vec<Value> = facts
        .services
        .iter()
        .map(|s| json!({"socket_type": s.socket, "port": s.port, "protocol": s.protocol, "product_name": s.product, "product_version": s.version, "has_vulnerability": !s.cves.is_empty(), "confirmed_time": "2026-10-30 12:00:00"}))
        .collect();
    json!({
        "ip": ip, "status": 200,
        "is_malicious": facts.outbound >= 3 || facts.inbound >= 4,
        "is_vpn": facts.flags[0].1, "is_anonymous_vpn": facts.flags[9].1, "can_remote_access": remote,
        "current_opened_port": section(ports.clone()),
        "remote_port": section(ports.into_iter().filter(|p| matches!(p["protocol"].as_str(), Some("RDP" | "VNC" | "Telnet" | "SSH"))).collect()),
        "vulnerability": section(vulnerabilities(&facts).iter().map(|(s, (cve, v3, v2, _))| json!({"cve_id": cve, "cwe_ids": ["CWE-20"], "edb_ids": [], "ports": {"tcp": [s.port], "udp": []}, "cvssv2_score": v2, "cvssv3_score": v3, "product_name": s.product, "product_version": s.version, "product_vendor": s.product})).collect()),
        "ids": section(vec![]),
        "scanning_record": section(if facts.flags[7].1 { vec![json!({"log_date": "2026-10-29", "dst_port": 22, "protocol_type": "tcp", "user_agent": null, "message": "SSH brute force", "confirmed_time": "2026-10-29 03:00:00"})] } else { vec![] }),
        "ip_category": section(facts.categories.iter().map(|c| json!({"type": c, "detect_source": "MISP", "confirmed_time": "2026-10-28 00:00:00"})).collect()),
        "webcam": section(vec![]),
    })
}

/// `GET /v2/feature/ip/suspicious-info`.
pub(crate) fn suspicious_info(seed: u64, ip: &str) -> Value {
    let report = ip_report(seed, ip, true);
    json!({
        "ip": ip, "status": 200, "score": report["score"], "abuse_record_count": report["ip_category"]["count"],
        "representative_domain": report.pointer("/domain/data/0/domain").cloned().unwrap_or(Value::from("")),
        "issues": report["issues"], "ids": report["ids"], "whois": report["whois"],
        "current_opened_port": section(report["port"]["data"].as_array().into_iter().flatten().map(|p| json!({"port": p["open_port_no"], "is_vulnerability": p["is_vulnerability"], "product_name": p["app_name"], "product_version": p["app_version"], "protocol": p["protocol"], "socket_type": p["socket"], "confirmed_time": p["confirmed_time"]})).collect()),
    })
}

/// Public IPs a domain maps to.
fn domain_ips(seed: u64, domain: &str) -> Vec<String> {
    const PREFIXES: &[(u8, u8)] = &[
        (45, 155),
        (185, 220),
        (104, 21),
        (193, 32),
        (91, 92),
        (5, 188),
        (139, 59),
        (51, 15),
        (64, 227),
        (141, 98),
    ];
    let mut dice = Dice::new(seed, &format!("ips:{domain}"));
    (0..1 + dice.below(3))
        .map(|_| {
            let (a, b) = *dice.pick(PREFIXES);
            format!("{a}.{b}.{}.{}", dice.below(256), 1 + dice.below(254))
        })
        .collect()
}

/// The registrable-ish host of a query (a domain or a URL).
pub(crate) fn host_of(query: &str) -> String {
    let without_scheme = query.split_once("://").map_or(query, |(_, rest)| rest);
    without_scheme
        .split(['/', '?', '#', ':'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// True when the sandbox pretends the domain does not exist.
pub(crate) fn nonexistent(query: &str) -> bool {
    host_of(query).starts_with("nx-")
}

/// True when the sandbox pretends the scan fails.
pub(crate) fn scan_fails(query: &str) -> bool {
    host_of(query).starts_with("scanfail-")
}

/// How suspicious a domain is made to look: (level index, phishing probability, phishing kit).
fn domain_profile(seed: u64, query: &str) -> (usize, f64, bool) {
    let mut dice = Dice::new(seed, &format!("domain:{}", host_of(query)));
    match dice.below(100) {
        0..=54 => (dice.below(2) as usize, dice.unit() * 15.0, false),
        55..=74 => (2 + dice.below(2) as usize, 20.0 + dice.unit() * 40.0, false),
        _ => (3 + dice.below(2) as usize, 60.0 + dice.unit() * 39.9, true),
    }
}

/// `data` of `GET /v2/domain/report/{id}` (the 2024 shape).
pub(crate) fn domain_report(seed: u64, query: &str, scan_id: u64) -> Value {
    let host = host_of(query);
    let (level, probability, kit) = domain_profile(seed, query);
    let mut dice = Dice::new(seed, &format!("domain-report:{host}"));
    let ips = domain_ips(seed, &host);
    let mapped: Vec<Value> = ips
        .iter()
        .map(|ip| {
            let facts = ip_facts(seed, ip);
            json!({"ip": ip, "as_name": facts.network.as_name, "country": facts.network.country.to_ascii_uppercase(), "score": LEVELS[facts.inbound.max(facts.outbound)].to_ascii_lowercase()})
        })
        .collect();
    let connected_info: Vec<Value> = ips
        .iter()
        .map(|ip| {
            let facts = ip_facts(seed, ip);
            json!({"ip": ip, "as_name": facts.network.as_name, "asn": facts.network.asn.to_string(), "cnt": 1 + dice.below(20), "country": facts.network.country, "redirect_cnt": 0, "score": LEVELS[facts.inbound.max(facts.outbound)], "domain_list": [{"domain": host}]})
        })
        .collect();
    let countries: Vec<Value> = ips
        .iter()
        .map(|ip| Value::from(ip_facts(seed, ip).network.country.to_ascii_uppercase()))
        .chain(std::iter::once(Value::Null))
        .collect();
    let newborn = kit && dice.chance(0.6);
    json!({
        "summary": {
            "url_phishing_prob": (probability * 100.0).round() / 100.0,
            "phishing_record": if kit { 1 + dice.below(5) } else { 0 },
            "suspicious_file": if kit && dice.chance(0.4) { 1 + dice.below(3) } else { 0 },
            "cred_input": if kit { "Dangerous" } else { "Safe" },
            "fake_domain": kit && dice.chance(0.7),
            "dga_score": (dice.unit() * if kit { 10.0 } else { 4.0 } * 100.0).round() / 100.0,
            "diff_domain_favicon": if kit { "Dangerous" } else { "Safe" },
            "fake_https_url": false, "punycode": host.contains("xn--"), "overlong_domain": host.len() > 40, "symbol_url": false,
            "fake_ssl": {"category": "Safe", "invalid": false},
            "mitm_attack": false, "mail_server": dice.chance(0.5),
            "newborn_domain": if newborn { timestamp(dice.below(20), &mut dice)[..10].to_owned() } else { String::new() },
            "abuse_record": {"critical": if level == 4 { 1 + dice.below(3) } else { 0 }, "dangerous": if level >= 3 { dice.below(3) } else { 0 }},
            "connect_to_ip_directly": 0, "hidden_element": 0, "hidden_iframe": 0, "iframe": 0, "js_obfuscated": u64::from(kit), "suspicious_element": 0,
            "redirection_diff_asn": 0, "redirection_diff_country": 0, "redirection_diff_domain": 0, "redirection_onclick": "Normal",
            "sfh": "Safe", "spf1": "Safe", "suspicious_cookie": false, "web_traffic": if kit { "No Rank" } else { "1" },
            "list_of_countries": countries,
        },
        "main_domain_info": {
            "main_domain": host, "inserted_url": query, "changed_url": query, "title": if kit { "Sign in to your account" } else { "Welcome" },
            "domain_created": if newborn { "2026-10-25".to_owned() } else { format!("{}-0{}-1{}", 2005 + dice.below(18), 1 + dice.below(9), dice.below(10)) },
            "domain_registrar": *dice.pick(&["NameCheap, Inc.", "GoDaddy.com, LLC", "Tucows Domains Inc.", "REG.RU LLC"]),
            "domain_score": {"score": LEVELS[level].to_ascii_lowercase(), "score_num": level as f64, "score_percentage": 20 * (level + 1)},
            "favicon": [], "jarm": "2ad2ad16d2ad2ad00042d42d00000069d641f34fe76acdc05c40262f8815e5", "dns_ip_asn": connected_info.first().map(|c| c["asn"].clone()),
        },
        "connected_ip": mapped.iter().map(|m| json!({"ip": m["ip"], "score": m["score"]})).collect::<Vec<_>>(),
        "connected_ip_info": connected_info,
        "mapped_ip": mapped,
        "certificates": [{"subject": format!("CN={host}"), "issuer": "C=US, O=Let's Encrypt, CN=R11", "protocol": "TLS 1.3", "certificate_life": "90 days", "valid_from": "2026-10-01 00:00:00", "valid_to": "2026-12-30 23:59:59"}],
        "main_certificate": {"subject": format!("CN={host}"), "issuer": "C=US, O=Let's Encrypt, CN=R11", "signed_algorithm": "SHA256-RSA", "startdate": "2026-10-01", "enddate": "2026-12-30"},
        "classification": {"dga_score": 1.2, "domain_type": [{"name": if kit { "phishing" } else { "business" }, "type": if kit { "malicious" } else { "general" }}], "google_safe_browsing": []},
        "dns_record": {"dns_record_type_a": {"ipv4": ips.iter().map(|ip| json!({"ip": ip, "score": "safe"})).collect::<Vec<_>>(), "ipv6": []}, "dns_record_type_cname": [], "dns_record_type_mx": [], "dns_record_type_ns": [], "dns_record_type_ptr": [], "dns_record_type_soa": []},
        "network_logs": {"abuse_record": {"critical": 0, "dangerous": 0}, "data": []},
        "ssl": false,
        "report_time": timestamp(0, &mut dice),
        "scan_id": scan_id,
    })
}

/// `data` of `GET /v1/domain/lite/report/{id}`.
pub(crate) fn lite_report(seed: u64, query: &str) -> Value {
    let full = domain_report(seed, query, 0);
    let (level, _, _) = domain_profile(seed, query);
    json!({
        "main_domain_info": {"main_domain": full["main_domain_info"]["main_domain"], "domain_created": full["main_domain_info"]["domain_created"], "domain_registrar": full["main_domain_info"]["domain_registrar"]},
        "domain_score": LEVELS[level].to_ascii_lowercase(),
        "classification": {"domain_type": full["classification"]["domain_type"], "dga_score": full["summary"]["dga_score"]},
        "summary": {"url_phishing_prob": full["summary"]["url_phishing_prob"], "real_ip": 0, "abuse_record": full["summary"]["abuse_record"], "fake_https_url": false, "overlong_domain": false, "punycode": false, "symbol_url": false, "dga_score": full["summary"]["dga_score"]},
        "dns_record": full["dns_record"],
        "mapped_ip": full["connected_ip"],
        "report_time": full["report_time"],
    })
}

/// The earlier scans `GET /v1/domain/reports` lists: half the domains have one, some old.
pub(crate) fn earlier_scan(seed: u64, query: &str, today: i64) -> Option<(u64, String)> {
    let mut dice = Dice::new(seed, &format!("earlier:{}", host_of(query)));
    if nonexistent(query) || scan_fails(query) || !dice.chance(0.5) {
        return None;
    }
    let (y, m, d) = scry_core::calendar::civil_from_days(today - dice.below(30) as i64);
    Some((
        9_000_000 + dice.below(1_000_000),
        format!("{y:04}-{m:02}-{d:02} 10:00:00"),
    ))
}

/// `data` of `GET /v1/domain/quick/hash/view`.
pub(crate) fn quick_check(seed: u64, query: &str) -> Value {
    let (level, _, kit) = domain_profile(seed, query);
    json!({"domain": host_of(query), "reg_dtime": "2026-10-30 09:00:00", "result": if kit || level >= 3 { "malicious" } else { "safe" }, "type": if kit { "phishing" } else { "general" }})
}
