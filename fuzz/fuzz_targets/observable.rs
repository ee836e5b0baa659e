//! Observable parsing and refanging on any text: never a panic, and what parses is stable (its
//! normalized value parses again to the same value). A value that itself holds defang notation
//! (a URL path with `[.]` or `[//]` in it) is refanged when read again, so it is left out of
//! that check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scry_core::Observable;
use scry_core::refang::refang;

fuzz_target!(|text: &str| {
    let refanged = refang(text);
    for token in [text, refanged.as_ref()] {
        if let Ok(observable) = Observable::parse(token) {
            let value = observable.value();
            if refang(&value) != value {
                continue;
            }
            let again = Observable::parse(&value)
                .unwrap_or_else(|e| panic!("{token:?} gave {value:?}, which does not parse: {e}"));
            assert_eq!(again.value(), value, "from {token:?}");
        }
    }
});
