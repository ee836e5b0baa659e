//! Deterministic benchmark data: the same seed gives the same indicators, networks and files on
//! every machine, so runs compare.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// xorshift64*: small, fast, and the same everywhere.
#[derive(Debug, Clone)]
pub struct Dice(u64);

impl Dice {
    pub fn new(seed: u64) -> Dice {
        Dice(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A public-looking IPv4 address (first octet 1–223, never 10, 127 or 172).
    pub fn ipv4(&mut self) -> Ipv4Addr {
        let mut first = 1 + self.below(222) as u8;
        if matches!(first, 10 | 127 | 172 | 192) {
            first += 1;
        }
        let rest = self.next_u64() as u32 & 0x00FF_FFFF;
        Ipv4Addr::from((u32::from(first) << 24) | rest)
    }

    pub fn ipv6(&mut self) -> Ipv6Addr {
        let high = 0x2a00_0000_0000_0000_u64 | (self.next_u64() & 0x00FF_FFFF_FFFF_FFFF);
        Ipv6Addr::from((u128::from(high) << 64) | u128::from(self.next_u64()))
    }

    /// 80 % IPv4, 20 % IPv6.
    pub fn ip(&mut self) -> IpAddr {
        if self.below(5) == 0 {
            IpAddr::V6(self.ipv6())
        } else {
            IpAddr::V4(self.ipv4())
        }
    }

    pub fn domain(&mut self) -> String {
        const SUFFIXES: [&str; 8] = ["com", "net", "org", "io", "xyz", "top", "co.uk", "de"];
        let label: String = (0..6 + self.below(8))
            .map(|_| char::from(b'a' + self.below(26) as u8))
            .collect();
        format!("{label}.{}", SUFFIXES[self.below(8) as usize])
    }

    /// A mix as a SOC receives it: 50 % IPv4, 10 % IPv6, 25 % domains, 15 % URLs.
    pub fn indicator(&mut self) -> String {
        match self.below(20) {
            0..=9 => self.ipv4().to_string(),
            10 | 11 => self.ipv6().to_string(),
            12..=16 => self.domain(),
            _ => format!("https://{}/login/{}", self.domain(), self.below(100_000)),
        }
    }
}
