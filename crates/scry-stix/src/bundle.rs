//! Writing STIX 2.1 bundles as a stream, one object per line, so an export of a million
//! indicators never holds them all.
//!
//! Objects that several indicators can lead to (an autonomous system, a country, a CVE) are
//! written once: the writer remembers a 64-bit hash of each shared id it wrote. The bundle's
//! id is derived from the ids written, so the same export gives the same bundle; it comes last
//! in the JSON object, which JSON allows, because it is known only at the end. The writer does
//! not own the output, so a caller can write other formats to the same stream.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::io::{self, Write};

use sha2::Digest;

use crate::graph::{StixObject, derived_id};

pub struct BundleWriter {
    written_shared: HashSet<u64>,
    ids: sha2::Sha256,
    objects: u64,
}

impl BundleWriter {
    /// Opens a bundle on `out`.
    pub fn start(out: &mut impl Write) -> io::Result<BundleWriter> {
        out.write_all(br#"{"type":"bundle","objects":["#)?;
        Ok(BundleWriter {
            written_shared: HashSet::new(),
            ids: sha2::Sha256::new(),
            objects: 0,
        })
    }

    /// Writes the objects not written yet.
    pub fn write(&mut self, out: &mut impl Write, objects: &[StixObject]) -> io::Result<()> {
        for object in objects {
            if object.shared {
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                object.id.hash(&mut hasher);
                if !self.written_shared.insert(hasher.finish()) {
                    continue;
                }
            }
            out.write_all(if self.objects == 0 { b"\n" } else { b",\n" })?;
            serde_json::to_writer(&mut *out, &object.json)?;
            self.ids.update(object.id.as_bytes());
            self.objects += 1;
        }
        Ok(())
    }

    /// Closes the bundle; returns the number of objects written.
    pub fn finish(self, out: &mut impl Write) -> io::Result<u64> {
        let key: String = self
            .ids
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        write!(out, "\n],\"id\":\"{}\"}}\n", derived_id("bundle", &key))?;
        Ok(self.objects)
    }
}
