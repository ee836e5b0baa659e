//! Classification of IP addresses and blocks against the IANA special-purpose registries.
//!
//! The egress gate (DESIGN.md invariant 1) rests on this table: an address that is not
//! [`IpClass::Public`] never leaves the machine. The table follows the IANA IPv4 and IPv6
//! Special-Purpose Address Registries (RFC 6890 and successors), plus multicast, the IPv4
//! "future use" block and, for IPv6, everything outside global unicast `2000::/3`. Blocks that IANA
//! marks globally reachable but that exist for a protocol rather than a host (AS112, AMT, PCP and
//! TURN anycast, ORCHIDv2, DETs) are classified as reserved: no source has anything to say about
//! them and sending them out only leaks what the SOC is looking at.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// What kind of address an IP is, as far as enrichment is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpClass {
    /// Globally routable unicast: the only class that may be sent to an external source.
    Public,
    /// RFC 1918 private-use IPv4, IPv6 unique-local, and NAT64 local-use prefixes.
    Private,
    /// RFC 6598 carrier-grade NAT shared address space.
    Shared,
    Loopback,
    LinkLocal,
    Multicast,
    /// RFC 5737 / RFC 3849 / RFC 9637 documentation ranges.
    Documentation,
    /// RFC 2544 / RFC 5180 benchmarking ranges.
    Benchmarking,
    /// Everything else that is not a public host: "this network", broadcast, future use, protocol
    /// assignments and anycast services, discard prefixes, deprecated and unallocated space.
    Reserved,
}

impl IpClass {
    /// Stable lower-case name used in output, tags and skip reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            IpClass::Public => "public",
            IpClass::Private => "private",
            IpClass::Shared => "shared",
            IpClass::Loopback => "loopback",
            IpClass::LinkLocal => "link-local",
            IpClass::Multicast => "multicast",
            IpClass::Documentation => "documentation",
            IpClass::Benchmarking => "benchmarking",
            IpClass::Reserved => "reserved",
        }
    }

    pub fn is_public(self) -> bool {
        self == IpClass::Public
    }
}

/// How a block in the table is classified.
#[derive(Clone, Copy)]
enum Rule {
    Class(IpClass),
    /// 6to4 (`2002::/16`) and NAT64 (`64:ff9b::/96`) carry an IPv4 address inside: classify that.
    EmbeddedV4 {
        bit_offset: u8,
    },
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8, class: IpClass) -> (Ipv4Addr, u8, IpClass) {
    (Ipv4Addr::new(a, b, c, d), len, class)
}

/// IPv4 blocks, most specific first where they nest. Anything not listed is public.
const V4_TABLE: &[(Ipv4Addr, u8, IpClass)] = &[
    v4(0, 0, 0, 0, 8, IpClass::Reserved), // "this network", RFC 791
    v4(10, 0, 0, 0, 8, IpClass::Private), // RFC 1918
    v4(100, 64, 0, 0, 10, IpClass::Shared), // RFC 6598
    v4(127, 0, 0, 0, 8, IpClass::Loopback), // RFC 1122
    v4(169, 254, 0, 0, 16, IpClass::LinkLocal), // RFC 3927
    v4(172, 16, 0, 0, 12, IpClass::Private), // RFC 1918
    v4(192, 0, 0, 0, 24, IpClass::Reserved), // IETF protocol assignments, RFC 6890
    v4(192, 0, 2, 0, 24, IpClass::Documentation), // TEST-NET-1, RFC 5737
    v4(192, 31, 196, 0, 24, IpClass::Reserved), // AS112-v4, RFC 7535
    v4(192, 52, 193, 0, 24, IpClass::Reserved), // AMT, RFC 7450
    v4(192, 88, 99, 0, 24, IpClass::Reserved), // deprecated 6to4 relay anycast, RFC 7526
    v4(192, 168, 0, 0, 16, IpClass::Private), // RFC 1918
    v4(192, 175, 48, 0, 24, IpClass::Reserved), // direct delegation AS112, RFC 7534
    v4(198, 18, 0, 0, 15, IpClass::Benchmarking), // RFC 2544
    v4(198, 51, 100, 0, 24, IpClass::Documentation), // TEST-NET-2
    v4(203, 0, 113, 0, 24, IpClass::Documentation), // TEST-NET-3
    v4(224, 0, 0, 0, 4, IpClass::Multicast), // RFC 5771
    v4(240, 0, 0, 0, 4, IpClass::Reserved), // future use and limited broadcast, RFC 1112/8190
];

const fn v6(segments: [u16; 8], len: u8, rule: Rule) -> (Ipv6Addr, u8, Rule) {
    let [a, b, c, d, e, f, g, h] = segments;
    (Ipv6Addr::new(a, b, c, d, e, f, g, h), len, rule)
}

const R: Rule = Rule::Class(IpClass::Reserved);

/// IPv6 blocks, most specific first where they nest. Anything outside `2000::/3` not listed here is
/// reserved; anything inside it not listed is public.
const V6_TABLE: &[(Ipv6Addr, u8, Rule)] = &[
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128, R), // unspecified
    v6(
        [0, 0, 0, 0, 0, 0, 0, 1],
        128,
        Rule::Class(IpClass::Loopback),
    ),
    v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96, R), // IPv4-mapped: normalized to IPv4 before classifying
    v6([0, 0, 0, 0, 0, 0, 0, 0], 96, R),      // deprecated IPv4-compatible
    v6(
        [0x64, 0xff9b, 0, 0, 0, 0, 0, 0],
        96,
        Rule::EmbeddedV4 { bit_offset: 96 },
    ), // RFC 6052
    v6(
        [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
        48,
        Rule::Class(IpClass::Private),
    ), // local-use NAT64, RFC 8215
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64, R),  // discard-only, RFC 6666
    v6([0x100, 0, 0, 1, 0, 0, 0, 0], 64, R),  // dummy prefix, RFC 9780
    v6([0x2001, 1, 0, 0, 0, 0, 0, 1], 128, R), // PCP anycast, RFC 7723
    v6([0x2001, 1, 0, 0, 0, 0, 0, 2], 128, R), // TURN anycast, RFC 8155
    v6([0x2001, 1, 0, 0, 0, 0, 0, 3], 128, R), // DNS-SD SRP anycast, RFC 9665
    v6(
        [0x2001, 2, 0, 0, 0, 0, 0, 0],
        48,
        Rule::Class(IpClass::Benchmarking),
    ), // RFC 5180
    v6([0x2001, 3, 0, 0, 0, 0, 0, 0], 32, R), // AMT, RFC 7450
    v6([0x2001, 4, 0x112, 0, 0, 0, 0, 0], 48, R), // AS112-v6, RFC 7535
    v6([0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28, R), // deprecated ORCHID, RFC 4843
    v6([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28, R), // ORCHIDv2, RFC 7343
    v6([0x2001, 0x30, 0, 0, 0, 0, 0, 0], 28, R), // drone remote ID DETs, RFC 9374
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, R), // IETF protocol assignments incl. Teredo, RFC 2928
    v6(
        [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
        32,
        Rule::Class(IpClass::Documentation),
    ), // RFC 3849
    v6(
        [0x2002, 0, 0, 0, 0, 0, 0, 0],
        16,
        Rule::EmbeddedV4 { bit_offset: 16 },
    ), // 6to4, RFC 3056
    v6([0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0], 48, R), // direct delegation AS112, RFC 7534
    v6(
        [0x3fff, 0, 0, 0, 0, 0, 0, 0],
        20,
        Rule::Class(IpClass::Documentation),
    ), // RFC 9637
    v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16, R), // SRv6 SIDs, RFC 9602
    v6(
        [0xfc00, 0, 0, 0, 0, 0, 0, 0],
        7,
        Rule::Class(IpClass::Private),
    ), // unique-local, RFC 4193
    v6(
        [0xfe80, 0, 0, 0, 0, 0, 0, 0],
        10,
        Rule::Class(IpClass::LinkLocal),
    ), // RFC 4291
    v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, R), // deprecated site-local, RFC 3879
    v6(
        [0xff00, 0, 0, 0, 0, 0, 0, 0],
        8,
        Rule::Class(IpClass::Multicast),
    ),
];

fn v4_matches(addr: Ipv4Addr, block: Ipv4Addr, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    u32::from(addr) & mask == u32::from(block)
}

fn v6_matches(addr: Ipv6Addr, block: Ipv6Addr, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    };
    u128::from(addr) & mask == u128::from(block)
}

/// The canonical form of an address: IPv4-mapped IPv6 (`::ffff:1.2.3.4`) becomes IPv4.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        IpAddr::V4(_) => addr,
    }
}

/// Classifies one address.
pub fn classify(addr: IpAddr) -> IpClass {
    match canonical(addr) {
        IpAddr::V4(a) => classify_v4(a),
        IpAddr::V6(a) => classify_v6(a),
    }
}

fn classify_v4(addr: Ipv4Addr) -> IpClass {
    V4_TABLE
        .iter()
        .find(|(block, len, _)| v4_matches(addr, *block, *len))
        .map_or(IpClass::Public, |(_, _, class)| *class)
}

fn classify_v6(addr: Ipv6Addr) -> IpClass {
    for (block, len, rule) in V6_TABLE {
        if v6_matches(addr, *block, *len) {
            return match *rule {
                Rule::Class(class) => class,
                Rule::EmbeddedV4 { bit_offset } => {
                    let embedded = (u128::from(addr) >> (96 - u32::from(bit_offset))) as u32;
                    classify_v4(Ipv4Addr::from(embedded))
                }
            };
        }
    }
    if v6_matches(addr, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3) {
        IpClass::Public
    } else {
        IpClass::Reserved
    }
}

/// Classifies a block. A block lying wholly inside one special-purpose block takes that class; a
/// block that contains or straddles any special-purpose block is [`IpClass::Reserved`] (it is not
/// wholly public, so it must not leave the machine); otherwise it is public.
pub fn classify_net(net: IpNet) -> IpClass {
    let net = net.trunc();
    match net {
        IpNet::V4(n) => classify_v4_net(n),
        IpNet::V6(n) => classify_v6_net(n),
    }
}

fn classify_v4_net(net: Ipv4Net) -> IpClass {
    for (block, len, class) in V4_TABLE {
        let special = Ipv4Net::new(*block, *len).expect("table prefixes are valid");
        if special.contains(&net) {
            return *class;
        }
        if net.contains(&special) {
            return IpClass::Reserved;
        }
    }
    IpClass::Public
}

fn classify_v6_net(net: Ipv6Net) -> IpClass {
    if let Some(v4) = net.network().to_ipv4_mapped()
        && net.prefix_len() >= 96
    {
        let v4_net = Ipv4Net::new(v4, net.prefix_len() - 96).expect("length fits");
        return classify_v4_net(v4_net);
    }
    for (block, len, rule) in V6_TABLE {
        let special = Ipv6Net::new(*block, *len).expect("table prefixes are valid");
        if special.contains(&net) {
            return match rule {
                Rule::Class(class) => *class,
                // A whole 6to4 or NAT64 block is only as public as every address inside it; decide
                // by its first and last address.
                Rule::EmbeddedV4 { .. } => {
                    let (first, last) = (classify_v6(net.network()), classify_v6(net.broadcast()));
                    if first == last && first.is_public() {
                        first
                    } else {
                        IpClass::Reserved
                    }
                }
            };
        }
        if net.contains(&special) {
            return IpClass::Reserved;
        }
    }
    let global = Ipv6Net::new(Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3).expect("valid");
    if global.contains(&net) {
        IpClass::Public
    } else {
        IpClass::Reserved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(text: &str) -> IpClass {
        classify(text.parse().expect("test addresses parse"))
    }

    #[test]
    fn public_addresses_are_public() {
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "185.220.101.1",
            "2606:4700::1111",
            "2a00:1450::1",
        ] {
            assert_eq!(class(a), IpClass::Public, "{a}");
        }
    }

    #[test]
    fn embedded_ipv4_decides_6to4_and_nat64() {
        assert_eq!(class("2002:0808:0808::1"), IpClass::Public);
        assert_eq!(class("2002:c0a8:0101::1"), IpClass::Private);
        assert_eq!(class("64:ff9b::8.8.8.8"), IpClass::Public);
        assert_eq!(class("64:ff9b::10.0.0.1"), IpClass::Private);
        assert_eq!(class("::ffff:10.1.2.3"), IpClass::Private);
        assert_eq!(class("::ffff:8.8.4.4"), IpClass::Public);
    }

    #[test]
    fn blocks_that_straddle_special_space_are_not_public() {
        let net = |s: &str| classify_net(s.parse().expect("valid"));
        assert_eq!(net("8.8.8.0/24"), IpClass::Public);
        assert_eq!(net("10.1.0.0/16"), IpClass::Private);
        assert_eq!(net("0.0.0.0/0"), IpClass::Reserved);
        assert_eq!(net("192.0.0.0/8"), IpClass::Reserved);
        assert_eq!(net("2001:db8:1::/48"), IpClass::Documentation);
        assert_eq!(net("2000::/3"), IpClass::Reserved);
        assert_eq!(net("2a00::/16"), IpClass::Public);
    }

    /// Every block in the IANA IPv4 and IPv6 Special-Purpose Address Registries (copied into
    /// `testdata/`), plus the multicast blocks, must be kept home: its first and last address and
    /// the block as a whole classify as something other than public.
    #[test]
    fn iana_special_purpose_registries_never_classify_public() {
        let registries = [
            include_str!("../testdata/iana-ipv4-special-registry.csv"),
            include_str!("../testdata/iana-ipv6-special-registry.csv"),
        ];
        let mut checked = 0;
        for registry in registries {
            let mut reader = csv::Reader::from_reader(registry.as_bytes());
            for row in reader.records() {
                let row = row.expect("registry rows are well formed");
                let block: IpNet = row[0].parse().expect("registry blocks parse");
                for addr in [block.network(), block.broadcast()] {
                    let class = classify(addr);
                    assert!(
                        !class.is_public(),
                        "{addr} in {block} ({}) classified public",
                        &row[1]
                    );
                }
                assert!(
                    !classify_net(block).is_public(),
                    "{block} ({}) classified public",
                    &row[1]
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 50, "both registries were read in full");
        for multicast in ["224.0.0.1", "239.255.255.250", "ff02::1", "ff05::1:3"] {
            assert_eq!(class(multicast), IpClass::Multicast, "{multicast}");
        }
        let expected = [
            ("10.20.30.40", IpClass::Private),
            ("172.31.255.255", IpClass::Private),
            ("192.168.0.1", IpClass::Private),
            ("100.127.255.254", IpClass::Shared),
            ("127.8.8.8", IpClass::Loopback),
            ("169.254.169.254", IpClass::LinkLocal),
            ("192.0.2.55", IpClass::Documentation),
            ("198.51.100.7", IpClass::Documentation),
            ("203.0.113.200", IpClass::Documentation),
            ("198.19.1.1", IpClass::Benchmarking),
            ("255.255.255.255", IpClass::Reserved),
            ("0.1.2.3", IpClass::Reserved),
            ("::1", IpClass::Loopback),
            ("fd12:3456::1", IpClass::Private),
            ("fe80::abcd", IpClass::LinkLocal),
            ("2001:db8:ffff::1", IpClass::Documentation),
            ("3fff:fff::1", IpClass::Documentation),
            ("2001:2::1", IpClass::Benchmarking),
            ("2001:0:4136:e378::1", IpClass::Reserved),
            ("4000::1", IpClass::Reserved),
        ];
        for (addr, want) in expected {
            assert_eq!(class(addr), want, "{addr}");
        }
    }
}
