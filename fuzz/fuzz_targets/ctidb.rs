//! `.ctidb` files of any content: opening and looking addresses up give answers or errors,
//! never a panic or a read out of bounds.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use scry_offline::ctidb::CtiDb;

const ADDRESSES: [&str; 5] = [
    "45.155.205.233",
    "1.2.3.4",
    "8.8.8.8",
    "0.0.0.0",
    "2001:db8::1",
];

fuzz_target!(|bytes: &[u8]| {
    let Ok(db) = CtiDb::from_bytes(bytes.to_vec()) else {
        return;
    };
    let _ = db.metadata();
    for address in ADDRESSES {
        let address: IpAddr = address.parse().expect("an address");
        let _ = db.lookup(address);
    }
});
