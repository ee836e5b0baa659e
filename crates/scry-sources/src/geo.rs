//! The offline `geo` source: the country, autonomous system and organization of public addresses,
//! from the network data pack — the one embedded in the binary, or a newer one named in
//! configuration. Nothing leaves the machine and nothing is paid for, so it needs no limiter,
//! budget or cache; its AS number also lets the egress gate apply ASN allowlist entries before
//! anything is sent out.

use std::net::IpAddr;
use std::sync::Arc;

use scry_core::observable::UrlHost;
use scry_core::{Cleared, Destination, Observable};
use scry_offline::NetPack;
use serde_json::{Map, Value};

use crate::{EnrichOptions, Finding, Source, SourceError, SourceFuture};

/// The source named `geo`.
#[derive(Debug, Clone)]
pub struct Geo {
    pack: Arc<NetPack>,
    /// The oldest upstream date in the pack, shown with every answer.
    data_as_of: Option<String>,
}

impl Geo {
    pub fn new(pack: Arc<NetPack>) -> Geo {
        let data_as_of = pack
            .meta()
            .sources
            .iter()
            .map(|s| s.data_as_of.clone())
            .min();
        Geo { pack, data_as_of }
    }

    pub fn pack(&self) -> &NetPack {
        &self.pack
    }

    /// The finding for one address (pure): what the pack knows, and how old the data is.
    pub fn describe(&self, address: IpAddr) -> Finding {
        let mut details = Map::new();
        let mut asn = None;
        if let Some(info) = self.pack.lookup(address) {
            if let Some(number) = info.asn {
                details.insert("asn".into(), number.into());
                asn = Some(number);
            }
            if let Some(name) = info.as_name {
                details.insert("as_name".into(), name.into());
            }
            if let Some(country) = info.country {
                details.insert("country".into(), country.into());
            }
        }
        if let Some(date) = &self.data_as_of {
            details.insert("data_as_of".into(), date.as_str().into());
        }
        Finding {
            details: Value::Object(details),
            asn,
            ..Finding::default()
        }
    }
}

/// The address a lookup is about: an IP, a network's first address, or a URL's IP host.
fn address_of(observable: &Observable) -> Option<IpAddr> {
    match observable {
        Observable::Ip(ip) => Some(*ip),
        Observable::Cidr(net) => Some(net.network()),
        Observable::Url(url) => match url.host() {
            UrlHost::Ip(ip) => Some(*ip),
            UrlHost::Domain(_) => None,
        },
        _ => None,
    }
}

impl Source for Geo {
    fn name(&self) -> &str {
        "geo"
    }

    fn destination(&self) -> Destination {
        Destination::Local
    }

    fn supports(&self, observable: &Observable) -> bool {
        address_of(observable).is_some_and(|ip| scry_core::ip::classify(ip).is_public())
    }

    fn enrich<'a>(
        &'a self,
        indicator: Cleared<'a>,
        _options: EnrichOptions,
    ) -> SourceFuture<'a, Result<Finding, SourceError>> {
        let finding = address_of(indicator.observable())
            .map(|ip| self.describe(ip))
            .unwrap_or_default();
        Box::pin(async move { Ok(finding) })
    }

    fn check(&self) -> SourceFuture<'_, Result<String, SourceError>> {
        let (v4, v6) = self.pack.range_counts();
        let text = format!(
            "offline network data: {v4} IPv4 and {v6} IPv6 ranges, data as of {}",
            self.data_as_of.as_deref().unwrap_or("an unknown date")
        );
        Box::pin(async move { Ok(text) })
    }
}
