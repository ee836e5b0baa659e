//! Putting results in priority order without holding them all in memory.
//!
//! Records are serialized into an in-memory run; when the run passes its byte budget it is sorted
//! and spilled to an anonymous temporary file. At the end the runs are merged with a heap. Ties
//! keep arrival order, so equal priorities read in input order. A small purpose-built merge is used
//! because the external-sort crates sort whole `Ord` values and would need the record type to carry
//! its own ordering and codec anyway.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use crate::record::Record;

/// Default budget of the in-memory run.
pub const DEFAULT_RUN_BYTES: usize = 32 * 1024 * 1024;

/// Collects records and yields them by priority, highest first.
pub struct PrioritySorter {
    run: Vec<(u64, Vec<u8>)>,
    run_bytes: usize,
    budget: usize,
    spilled: Vec<File>,
    sequence: u64,
    widest_indicator: usize,
}

/// Sort key: lower sorts first. High priority first, then arrival order.
fn key(priority: u8, sequence: u64) -> u64 {
    (u64::from(u8::MAX - priority) << 56) | (sequence & ((1 << 56) - 1))
}

impl PrioritySorter {
    pub fn new(budget: usize) -> PrioritySorter {
        PrioritySorter {
            run: Vec::new(),
            run_bytes: 0,
            budget,
            spilled: Vec::new(),
            sequence: 0,
            widest_indicator: 0,
        }
    }

    pub fn push(&mut self, record: &Record) -> io::Result<()> {
        let bytes = serde_json::to_vec(record).map_err(io::Error::other)?;
        let shown = record
            .indicator
            .as_deref()
            .unwrap_or(&record.input)
            .chars()
            .count();
        self.widest_indicator = self.widest_indicator.max(shown);
        self.run_bytes += bytes.len() + 32;
        self.run.push((key(record.priority, self.sequence), bytes));
        self.sequence += 1;
        if self.run_bytes >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// The widest indicator seen, in characters (for aligning tables).
    pub fn widest_indicator(&self) -> usize {
        self.widest_indicator
    }

    /// Number of records pushed.
    pub fn len(&self) -> u64 {
        self.sequence
    }

    pub fn is_empty(&self) -> bool {
        self.sequence == 0
    }

    fn spill(&mut self) -> io::Result<()> {
        self.run.sort_unstable_by_key(|(k, _)| *k);
        let mut file = tempfile::tempfile()?;
        {
            let mut out = BufWriter::new(&mut file);
            for (k, bytes) in self.run.drain(..) {
                out.write_all(&k.to_le_bytes())?;
                out.write_all(&(bytes.len() as u32).to_le_bytes())?;
                out.write_all(&bytes)?;
            }
            out.flush()?;
        }
        file.seek(SeekFrom::Start(0))?;
        self.spilled.push(file);
        self.run_bytes = 0;
        Ok(())
    }

    /// All records, highest priority first.
    pub fn into_sorted(mut self) -> io::Result<SortedRecords> {
        if self.spilled.is_empty() {
            self.run.sort_unstable_by_key(|(k, _)| *k);
            return Ok(SortedRecords::Memory(self.run.into_iter()));
        }
        if !self.run.is_empty() {
            self.spill()?;
        }
        let mut readers: Vec<BufReader<File>> = self
            .spilled
            .into_iter()
            .map(|f| BufReader::with_capacity(256 * 1024, f))
            .collect();
        let mut heap = BinaryHeap::new();
        for (index, reader) in readers.iter_mut().enumerate() {
            if let Some((k, bytes)) = read_entry(reader)? {
                heap.push(Reverse((k, index, bytes)));
            }
        }
        Ok(SortedRecords::Merge { readers, heap })
    }
}

fn read_entry(reader: &mut impl Read) -> io::Result<Option<(u64, Vec<u8>)>> {
    let mut header = [0u8; 12];
    match reader.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let k = u64::from_le_bytes(header[..8].try_into().expect("8 bytes"));
    let len = u32::from_le_bytes(header[8..].try_into().expect("4 bytes")) as usize;
    let mut bytes = vec![0; len];
    reader.read_exact(&mut bytes)?;
    Ok(Some((k, bytes)))
}

/// Records in priority order.
pub enum SortedRecords {
    Memory(std::vec::IntoIter<(u64, Vec<u8>)>),
    Merge {
        readers: Vec<BufReader<File>>,
        heap: BinaryHeap<Reverse<(u64, usize, Vec<u8>)>>,
    },
}

impl Iterator for SortedRecords {
    type Item = io::Result<Record>;

    fn next(&mut self) -> Option<io::Result<Record>> {
        let bytes = match self {
            SortedRecords::Memory(iter) => iter.next()?.1,
            SortedRecords::Merge { readers, heap } => {
                let Reverse((_, index, bytes)) = heap.pop()?;
                match read_entry(&mut readers[index]) {
                    Ok(Some((k, next))) => heap.push(Reverse((k, index, next))),
                    Ok(None) => {}
                    Err(e) => return Some(Err(e)),
                }
                bytes
            }
        };
        Some(serde_json::from_slice(&bytes).map_err(io::Error::other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Status;

    fn record(input: &str, priority: u8) -> Record {
        Record {
            input: input.into(),
            indicator: Some(input.into()),
            kind: Some("domain-name".into()),
            status: Status::Enriched,
            skip_reason: None,
            error: None,
            priority,
            severity: scry_core::Severity::Info,
            reasons: vec![],
            tags: vec![],
            sources: Default::default(),
            stix_id: None,
            tlp: None,
            position: "x:1".into(),
            context: None,
        }
    }

    fn sorted(budget: usize, priorities: &[u8]) -> Vec<(String, u8)> {
        let mut sorter = PrioritySorter::new(budget);
        for (i, p) in priorities.iter().enumerate() {
            sorter.push(&record(&format!("r{i}"), *p)).expect("push");
        }
        sorter
            .into_sorted()
            .expect("sort")
            .map(|r| r.expect("read back"))
            .map(|r| (r.input, r.priority))
            .collect()
    }

    #[test]
    fn orders_by_priority_then_arrival_in_memory_and_on_disk() {
        let priorities: Vec<u8> = (0..500u32).map(|i| ((i * 37) % 101) as u8).collect();
        let in_memory = sorted(usize::MAX, &priorities);
        let spilled = sorted(2_000, &priorities);
        assert_eq!(in_memory, spilled, "spilling must not change the order");
        assert_eq!(in_memory.len(), 500);
        for pair in in_memory.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert!(
                a.1 > b.1
                    || (a.1 == b.1
                        && a.0[1..].parse::<u32>().unwrap() < b.0[1..].parse::<u32>().unwrap()),
                "{a:?} before {b:?}"
            );
        }
    }
}
