//! Criminal IP answers of any shape: decoded by the wire types (which tolerate what the API has
//! been seen to send) and mapped to findings, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scry_sources::criminalip::map::{Weights, domain_finding, ip_finding, worst_level};
use scry_sources::criminalip::wire::{
    DomainReport, EarlierScans, IpReport, MaliciousInfo, QuickCheck,
};
use serde_json::Value;

fuzz_target!(|bytes: &[u8]| {
    let Ok(answer) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };
    let weights = Weights::default();
    let data = answer.get("data").cloned().unwrap_or(Value::Null);
    if let Ok(report) = serde_json::from_value::<IpReport>(answer.clone()) {
        let malicious = serde_json::from_value::<MaliciousInfo>(answer.clone()).ok();
        let finding = ip_finding("45.155.205.233", &report, malicious.as_ref(), &weights);
        let _ = worst_level(&finding);
    }
    if let Ok(report) = serde_json::from_value::<DomainReport>(data.clone()) {
        let finding = domain_finding(Some(1), &report, &weights);
        let _ = worst_level(&finding);
    }
    let _ = serde_json::from_value::<QuickCheck>(data.clone());
    let _ = serde_json::from_value::<EarlierScans>(data);
});
