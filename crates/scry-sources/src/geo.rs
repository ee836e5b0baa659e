//! The offline `geo` source: the country, autonomous system and organization of public addresses,
//! from the network data pack — the one embedded in the binary, or a newer one named in
//! configuration. Nothing leaves the machine and nothing is paid for, so it needs no limiter,
//! budget or cache; its AS number also lets the egress gate apply ASN allowlist entries before
//! anything is sent out. A long-running process takes up a pack `scry data update` replaced at its
//! next [`Source::reload`], swapping it in without pausing lookups.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use scry_core::{Cleared, Destination, Observable};
use scry_offline::NetPack;
use serde_json::{Map, Value};

use crate::{EnrichOptions, Finding, Source, SourceError, SourceFuture};

/// The source named `geo`.
#[derive(Debug)]
pub struct Geo {
    current: RwLock<Arc<Loaded>>,
    /// The pack file `scry data update` writes, watched by [`Source::reload`], and the
    /// modification time of the copy in use.
    watched: Option<(PathBuf, Mutex<Option<SystemTime>>)>,
}

/// A pack in use.
#[derive(Debug)]
struct Loaded {
    pack: Arc<NetPack>,
    /// The oldest upstream date in the pack, shown with every answer.
    data_as_of: Option<String>,
}

impl Loaded {
    fn new(pack: Arc<NetPack>) -> Loaded {
        let data_as_of = pack
            .meta()
            .sources
            .iter()
            .map(|s| s.data_as_of.clone())
            .min();
        Loaded { pack, data_as_of }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Geo {
    pub fn new(pack: Arc<NetPack>) -> Geo {
        Geo {
            current: RwLock::new(Arc::new(Loaded::new(pack))),
            watched: None,
        }
    }

    /// A source that also takes up the pack at `file` whenever that file changes (it may not
    /// exist yet); `pack` is what is in use now.
    pub fn watching(pack: Arc<NetPack>, file: PathBuf) -> Geo {
        let stamp = modified(&file);
        Geo {
            current: RwLock::new(Arc::new(Loaded::new(pack))),
            watched: Some((file, Mutex::new(stamp))),
        }
    }

    fn loaded(&self) -> Arc<Loaded> {
        Arc::clone(&self.current.read().expect("the pack lock is not poisoned"))
    }

    pub fn pack(&self) -> Arc<NetPack> {
        Arc::clone(&self.loaded().pack)
    }

    /// The finding for one address (pure): what the pack knows, and how old the data is.
    pub fn describe(&self, address: IpAddr) -> Finding {
        let loaded = self.loaded();
        let mut details = Map::new();
        let mut asn = None;
        if let Some(info) = loaded.pack.lookup(address) {
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
        if let Some(date) = &loaded.data_as_of {
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
fn network_address_of(observable: &Observable) -> Option<IpAddr> {
    match observable {
        Observable::Cidr(net) => Some(net.network()),
        other => crate::address_of(other),
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
        network_address_of(observable).is_some_and(|ip| scry_core::ip::classify(ip).is_public())
    }

    fn enrich<'a>(
        &'a self,
        indicator: Cleared<'a>,
        _options: EnrichOptions,
    ) -> SourceFuture<'a, Result<Finding, SourceError>> {
        let finding = network_address_of(indicator.observable())
            .map(|ip| self.describe(ip))
            .unwrap_or_default();
        Box::pin(async move { Ok(finding) })
    }

    fn check(&self) -> SourceFuture<'_, Result<String, SourceError>> {
        let loaded = self.loaded();
        let (v4, v6) = loaded.pack.range_counts();
        let text = format!(
            "offline network data: {v4} IPv4 and {v6} IPv6 ranges, data as of {}",
            loaded.data_as_of.as_deref().unwrap_or("an unknown date")
        );
        Box::pin(async move { Ok(text) })
    }

    fn reload(&self) -> Result<bool, String> {
        let Some((file, stamp)) = &self.watched else {
            return Ok(false);
        };
        let now = modified(file);
        let mut seen = stamp.lock().expect("the stamp lock is not poisoned");
        if now.is_none() || now == *seen {
            return Ok(false);
        }
        let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let pack = NetPack::from_gzip(&bytes).map_err(|e| format!("{}: {e}", file.display()))?;
        // Lookups in progress finish on the pack they hold; new ones get the new pack.
        *self.current.write().expect("the pack lock is not poisoned") =
            Arc::new(Loaded::new(Arc::new(pack)));
        *seen = now;
        Ok(true)
    }
}

#[cfg(test)]
mod reload_tests {
    use super::*;
    use scry_offline::{DataSource, PackBuilder, PackMeta};

    fn pack_bytes(asn_row: &str) -> Vec<u8> {
        let mut builder = PackBuilder::default();
        builder
            .add_asn_csv("asn.csv", asn_row.as_bytes())
            .expect("AS rows");
        builder
            .add_country_csv("country.csv", "45.155.205.0,45.155.205.255,NL\n".as_bytes())
            .expect("country rows");
        let meta = PackMeta {
            built: "2026-11-24".into(),
            sources: vec![DataSource {
                provides: "asn".into(),
                package: "test".into(),
                license: "CC0".into(),
                attribution: "the tests".into(),
                data_as_of: "2026-11-20".into(),
            }],
        };
        let mut out = Vec::new();
        builder.write(&meta, &mut out).expect("written");
        out
    }

    /// Writes `bytes` with a modification time `seconds` after a fixed instant, so successive
    /// writes differ whatever the file system's clock resolution.
    fn write_at(file: &Path, bytes: &[u8], seconds: u64) {
        std::fs::write(file, bytes).expect("write");
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000 + seconds);
        std::fs::File::options()
            .write(true)
            .open(file)
            .and_then(|f| f.set_modified(time))
            .expect("set the modification time");
    }

    #[test]
    fn a_replaced_pack_is_taken_up_at_the_next_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("netpack.bin.gz");
        let first = NetPack::from_gzip(&pack_bytes("45.155.205.0,45.155.205.255,64500,First\n"))
            .expect("a pack");
        let geo = Geo::watching(Arc::new(first), file.clone());
        let address: IpAddr = "45.155.205.233".parse().expect("an address");
        assert_eq!(geo.reload(), Ok(false), "nothing written yet");
        write_at(
            &file,
            &pack_bytes("45.155.205.0,45.155.205.255,64511,Second\n"),
            1,
        );
        assert_eq!(geo.reload(), Ok(true));
        assert_eq!(geo.describe(address).asn, Some(64511));
        assert_eq!(geo.reload(), Ok(false), "unchanged since");
        write_at(&file, b"not a pack", 2);
        let kept = geo.reload();
        assert!(kept.is_err_and(|e| e.contains("netpack.bin.gz")));
        assert_eq!(
            geo.describe(address).asn,
            Some(64511),
            "the pack in use stays"
        );
    }
}
