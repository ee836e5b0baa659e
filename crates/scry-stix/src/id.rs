//! Deterministic STIX identifiers.
//!
//! STIX 2.1 §2.9: `type--UUIDv5(namespace 00abedb4-aa42-466c-9c01-fed23315a9b7, JCS(contributing
//! properties))`. The contributing properties of every type scry emits are single strings, numbers
//! or a one-entry `hashes` map, for which `serde_json`'s sorted-key compact output is the RFC 8785
//! canonical form. A hand-written canonicalizer is used rather than a JCS crate because nothing
//! scry identifies has floats or non-ASCII escapes where the two could differ.

use scry_core::Observable;
use serde_json::{Value, json};
use uuid::Uuid;

/// The namespace STIX 2.1 fixes for deterministic SCO identifiers.
pub const STIX_NAMESPACE: Uuid = Uuid::from_u128(0x00abedb4_aa42_466c_9c01_fed23315a9b7);

/// The id of an object of `stix_type` whose contributing properties are `contributing`.
pub fn sco_id(stix_type: &str, contributing: &Value) -> String {
    let canonical = serde_json::to_string(contributing).expect("JSON values always serialize");
    format!(
        "{stix_type}--{}",
        Uuid::new_v5(&STIX_NAMESPACE, canonical.as_bytes())
    )
}

/// The deterministic id of the STIX object an observable maps to. Vulnerabilities are SDOs, for
/// which STIX expects a UUIDv4; scry hashes the CVE name into one of that shape
/// ([`crate::graph::derived_id`]) so they are stable too.
pub fn observable_id(observable: &Observable) -> String {
    let contributing = match observable {
        Observable::Asn(number) => json!({ "number": number }),
        Observable::Cve(name) => return crate::graph::derived_id("vulnerability", name),
        Observable::Hash { algorithm, value } => {
            json!({ "hashes": { algorithm.stix_name(): value } })
        }
        other => json!({ "value": other.value() }),
    };
    sco_id(observable.stix_type(), &contributing)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected ids were produced by the OASIS `stix2` Python library (3.0), independent of scry.
    #[test]
    fn ids_match_the_reference_implementation() {
        let cases = [
            (
                "198.51.100.3",
                "ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4",
            ),
            (
                "2001:db8::1",
                "ipv6-addr--6469e3a9-b053-5e34-a025-9396ae051d26",
            ),
            (
                "example.com",
                "domain-name--bedb4899-d24b-5401-bc86-8f6b4cc18ec7",
            ),
            (
                "https://example.com/research/index.html",
                "url--47c3cf9a-5027-5bf0-997a-017c7edc7c55",
            ),
            (
                "john@example.com",
                "email-addr--7165e2a9-671f-585d-b1e1-ca59c671d934",
            ),
            (
                "AS15139",
                "autonomous-system--3aa27478-50b5-5ab8-9da9-cdc12b657fff",
            ),
            (
                "aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f",
                "file--02c74237-f6bc-5e2e-bcbe-e9bf3d69ac64",
            ),
            (
                "10.0.0.0/8",
                "ipv4-addr--86428b07-0841-50f5-884f-260544a6ebee",
            ),
            (
                "bücher.de",
                "domain-name--320d8e58-ae43-5bd4-b670-b8896595d76a",
            ),
        ];
        for (input, want) in cases {
            let observable = Observable::parse(input).expect("valid indicator");
            assert_eq!(observable_id(&observable), want, "{input}");
        }
    }

    #[test]
    fn defanged_and_plain_forms_share_one_id() {
        let a = Observable::parse("hxxps://Example[.]com/research/index.html").expect("url");
        let b = Observable::parse("https://example.com/research/index.html").expect("url");
        assert_eq!(observable_id(&a), observable_id(&b));
    }
}
