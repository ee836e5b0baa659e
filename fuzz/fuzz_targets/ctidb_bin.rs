//! Packed `.bin` CTIDB files of any content (both layouts; the licence signature is not checked,
//! so the fuzzer reaches the tables): answers or errors, never a panic.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use scry_offline::ctidb_bin::{PackedDb, Verification};

const ADDRESSES: [&str; 5] = [
    "45.155.205.233",
    "1.2.3.4",
    "8.8.8.8",
    "0.0.0.0",
    "255.255.255.255",
];

fuzz_target!(|bytes: &[u8]| {
    let Ok(db) = PackedDb::from_bytes(bytes.to_vec(), &Verification::Skip) else {
        return;
    };
    let _ = db.metadata();
    for address in ADDRESSES {
        let address: IpAddr = address.parse().expect("an address");
        let _ = db.lookup(address);
    }
});
