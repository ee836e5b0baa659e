//! Network data packs of any content (as `scry data` reads them, after decompression): a pack
//! or an error, and lookups in a pack that loaded never panic.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use scry_offline::NetPack;

const ADDRESSES: [&str; 5] = ["45.155.205.233", "1.0.0.1", "8.8.8.8", "2001:db8::1", "::"];

fuzz_target!(|bytes: &[u8]| {
    let Ok(pack) = NetPack::from_bytes(bytes) else {
        return;
    };
    let _ = pack.range_counts();
    for address in ADDRESSES {
        let address: IpAddr = address.parse().expect("an address");
        let _ = pack.lookup(address);
    }
});
