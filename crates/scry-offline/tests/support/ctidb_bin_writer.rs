//! A writer of packed `.bin` CTIDB test files — layout v1 (any minor version) and the columnar
//! layout v2 — signed with a throwaway RSA key made once per test run. Shared by the tests of
//! scry-offline and of the `scry` binary (`#[path]`-included, so not every piece is used by both).
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::sync::OnceLock;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};

/// A throwaway signing key, made once per test run.
pub(crate) fn key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| KeyPair::generate(KeySize::Rsa2048).expect("an RSA key"))
}

pub(crate) fn public_key() -> Vec<u8> {
    key().public_key().as_der().expect("DER").as_ref().to_vec()
}

pub(crate) const ISSUED: u64 = 1_767_225_600;
pub(crate) const EXPIRES: u64 = 1_798_761_600;

/// The licence blob and its signature.
pub(crate) fn license(plan: u8) -> Vec<u8> {
    let mut blob = vec![0u8; 256];
    blob[..20].copy_from_slice(b"LICENSE-KEY-12345678");
    blob[32..40].copy_from_slice(b"CUST-042");
    blob[48] = plan;
    blob[49..57].copy_from_slice(&ISSUED.to_le_bytes());
    blob[57..65].copy_from_slice(&EXPIRES.to_le_bytes());
    blob[65..69].copy_from_slice(&0x0000_0105u32.to_le_bytes());
    let mut signature = vec![0u8; key().public_modulus_len()];
    key()
        .sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            &blob,
            &mut signature,
        )
        .expect("signs");
    blob.extend(signature);
    blob
}

pub(crate) fn ip(text: &str) -> u32 {
    u32::from(text.parse::<Ipv4Addr>().expect("an IPv4 address"))
}

/// A name table being written: `""` is id 0.
#[derive(Default)]
pub(crate) struct Names(Vec<String>);

impl Names {
    fn id(&mut self, name: &str) -> u32 {
        if self.0.is_empty() {
            self.0.push(String::new());
        }
        if let Some(at) = self.0.iter().position(|n| n == name) {
            return at as u32;
        }
        self.0.push(name.to_owned());
        (self.0.len() - 1) as u32
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = (self.0.len() as u32).to_le_bytes().to_vec();
        for name in &self.0 {
            out.extend((name.len() as u16).to_le_bytes());
            out.extend(name.as_bytes());
        }
        out
    }
}

/// One v1 range and its hot record.
pub(crate) struct Hot {
    pub(crate) start: &'static str,
    pub(crate) end: &'static str,
    pub(crate) country: &'static str,
    pub(crate) as_name: &'static str,
    pub(crate) outbound: u8,
    pub(crate) inbound: u8,
    pub(crate) flags: u16,
}

pub(crate) fn v1_file(minor: u16, ranges: &[Hot]) -> Vec<u8> {
    let mut names = Names::default();
    // Country codes first: a hot record holds their id in one byte.
    for range in ranges {
        names.id(range.country);
    }
    let mut table = Vec::new();
    let mut hot = Vec::new();
    for range in ranges {
        let offset = hot.len() as u32;
        let asn = names.id(range.as_name);
        hot.push(names.id(range.country) as u8);
        hot.extend(&asn.to_le_bytes()[..3]);
        hot.extend([range.outbound, range.inbound]);
        hot.extend(range.flags.to_le_bytes());
        table.extend(ip(range.start).to_le_bytes());
        table.extend(ip(range.end).to_le_bytes());
        table.extend(offset.to_le_bytes());
        if minor >= 2 {
            table.extend(0u64.to_le_bytes());
        } else {
            table.extend(0u32.to_le_bytes());
        }
    }
    let mut out = b"CTIDBV2\0".to_vec();
    out.extend(1u16.to_le_bytes());
    out.extend(minor.to_le_bytes());
    out.extend((ranges.len() as u32).to_le_bytes());
    out.extend(license(4));
    out.extend(table);
    out.extend(hot);
    let names_at = out.len() as u64;
    out.extend(names.bytes());
    out.extend(b"\0PACKED\0");
    out.extend(0u32.to_le_bytes());
    out.extend(((1u32 << 16) | u32::from(minor)).to_le_bytes());
    if minor >= 1 {
        out.extend(names_at.to_le_bytes());
    }
    out
}

/// One v2 detail entry.
pub(crate) struct Detail {
    pub(crate) start: &'static str,
    pub(crate) end: &'static str,
    pub(crate) hostname: &'static str,
    pub(crate) representative_domain: &'static str,
    pub(crate) ssl: &'static str,
    pub(crate) products: &'static [&'static str],
    pub(crate) cve: &'static [&'static str],
    pub(crate) ports: &'static [u16],
    pub(crate) tags: &'static [&'static str],
}

pub(crate) struct V2 {
    pub(crate) geo: Vec<(
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    )>,
    pub(crate) flags: Vec<(u8, Vec<(&'static str, &'static str)>)>,
    pub(crate) scores: Option<Vec<(&'static str, &'static str, u8, u8)>>,
    pub(crate) details: Option<Vec<Detail>>,
    pub(crate) license: bool,
}

impl V2 {
    pub(crate) fn bytes(&self) -> Vec<u8> {
        let mut sections: Vec<(u8, Vec<u8>)> = Vec::new();
        let mut names = Names::default();
        let mut geo = (self.geo.len() as u32).to_le_bytes().to_vec();
        for (start, end, country, as_name, city) in &self.geo {
            for value in [
                ip(start),
                ip(end),
                names.id(country),
                names.id(as_name),
                names.id(city),
            ] {
                geo.extend(value.to_le_bytes());
            }
        }
        geo.extend(names.bytes());
        sections.push((1, geo));
        let mut flags = (self.flags.len() as u32).to_le_bytes().to_vec();
        let mut blob = Vec::new();
        for (id, ranges) in &self.flags {
            flags.push(*id);
            flags.extend((blob.len() as u32).to_le_bytes());
            flags.extend((ranges.len() as u32).to_le_bytes());
            for (start, end) in ranges {
                blob.extend(ip(start).to_le_bytes());
                blob.extend(ip(end).to_le_bytes());
            }
        }
        flags.extend(blob);
        sections.push((2, flags));
        if let Some(scores) = &self.scores {
            let mut out = (scores.len() as u32).to_le_bytes().to_vec();
            for (start, end, outbound, inbound) in scores {
                out.extend(ip(start).to_le_bytes());
                out.extend(ip(end).to_le_bytes());
                out.extend([*outbound, *inbound]);
            }
            sections.push((3, out));
        }
        if let Some(details) = &self.details {
            let mut names = Names::default();
            let mut raw = Vec::new();
            let mut out = (details.len() as u32).to_le_bytes().to_vec();
            for detail in details {
                out.extend(ip(detail.start).to_le_bytes());
                out.extend(ip(detail.end).to_le_bytes());
                out.extend((raw.len() as u64).to_le_bytes());
                for name in [detail.hostname, detail.representative_domain, detail.ssl] {
                    raw.extend(names.id(name).to_le_bytes());
                }
                for list in [detail.products, detail.cve] {
                    raw.push(list.len() as u8);
                    for name in list {
                        raw.extend(names.id(name).to_le_bytes());
                    }
                }
                raw.push(detail.ports.len() as u8);
                for port in detail.ports {
                    raw.extend(port.to_le_bytes());
                }
                raw.push(detail.tags.len() as u8);
                for name in detail.tags {
                    raw.extend(names.id(name).to_le_bytes());
                }
            }
            let frame = ruzstd::encoding::compress_to_vec(
                &raw[..],
                ruzstd::encoding::CompressionLevel::Fastest,
            );
            out.extend((frame.len() as u32).to_le_bytes());
            out.extend((raw.len() as u32).to_le_bytes());
            out.extend(frame);
            out.extend(names.bytes());
            sections.push((4, out));
        }
        if self.license {
            sections.push((9, license(4)));
        }
        let mut out = b"CTIDBV2\0".to_vec();
        out.extend(2u16.to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out.extend(7u16.to_le_bytes());
        out.extend((sections.len() as u16).to_le_bytes());
        let mut at = 16 + sections.len() * 20;
        for (kind, body) in &sections {
            out.extend([*kind, 0]);
            out.extend(0u16.to_le_bytes());
            out.extend((at as u64).to_le_bytes());
            out.extend((body.len() as u64).to_le_bytes());
            at += body.len();
        }
        for (_, body) in sections {
            out.extend(body);
        }
        out
    }
}
