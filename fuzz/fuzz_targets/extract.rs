//! Free-text extraction on any line: never a panic, and every indicator found is one that
//! parses on its own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scry_core::Observable;
use scry_core::extract::extract;

fuzz_target!(|line: &str| {
    for found in extract(line) {
        let value = found.observable.value();
        assert!(
            Observable::parse(&value).is_ok(),
            "{value:?} (from {:?}) does not parse again",
            found.token
        );
    }
});
