//! The filter of claimed external ids: a Bloom filter of every external id ever claimed, in
//! one Redis bitmap whose bit 0 says the filter is complete (every id in MySQL has its bits
//! set). One key, so whatever loses the bits loses the mark with them. A new id the filter
//! proves unseen needs no MySQL lookup.

use super::{Cache, CacheError};
use std::time::Duration;

pub(super) const COMPLETE_SEEN_SCRIPT: &str = include_str!("complete_seen.lua");

/// What the filter of claimed ids says of a newly claimed id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Never claimed before: no MySQL row can hold it (the filter has no false negatives).
    New,
    /// Maybe claimed before (or a false positive): MySQL decides.
    Maybe,
    /// The filter is not complete (Redis lost it; being rebuilt): MySQL decides.
    Unknown,
}

/// Default bits of the filter of claimed external ids: 16 MiB of Redis, a 1 % false-positive
/// rate up to ~14 million ids (more ids only make MySQL lookups more frequent, never wrong).
pub(crate) const SEEN_BITS: u64 = 1 << 27;
/// Bits set per id.
pub const SEEN_HASHES: usize = 7;
/// Ids whose bits one command sets (a rebuild marks thousands at once: one command each
/// thousand keeps Redis free for others between them).
const MARK_PER_COMMAND: usize = 1024;

/// The bits of (merchant, endpoint, external id) in a filter of `bits` bits (never bit 0,
/// the completeness mark).
pub fn seen_positions(
    bits: u64,
    merchant: &str,
    endpoint: &str,
    external_id: &str,
) -> [u64; SEEN_HASHES] {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    for part in [merchant, endpoint, external_id] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    let mut positions = [0u64; SEEN_HASHES];
    for (p, word) in positions.iter_mut().zip(digest.chunks_exact(4)) {
        let w = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        *p = 1 + u64::from(w) % (bits.max(2) - 1);
    }
    positions
}

impl Cache {
    /// [`seen_positions`] in this deployment's filter.
    pub fn seen_positions(
        &self,
        merchant: &str,
        endpoint: &str,
        external_id: &str,
    ) -> [u64; SEEN_HASHES] {
        seen_positions(self.seen_bits, merchant, endpoint, external_id)
    }

    /// Sets the filter bits of ids about to be written to MySQL. A worker does it before
    /// each batch: a command claimed before Redis lost the filter has its bits again before
    /// its row can exist (the claim set them the first time). One `BITFIELD` sets the bits
    /// of up to [`MARK_PER_COMMAND`] ids: Redis spends on a command far more than on each
    /// bit it sets, and seven `SETBIT`s per id were most of a worker's Redis commands.
    pub async fn mark_seen(&self, positions: &[[u64; SEEN_HASHES]]) -> Result<(), CacheError> {
        if positions.is_empty() {
            return Ok(());
        }
        let key = self.names.seen();
        let mut pipe = redis::pipe();
        for ids in positions.chunks(MARK_PER_COMMAND) {
            let command = pipe.cmd("BITFIELD").arg(key);
            for p in ids.iter().flatten() {
                command.arg("SET").arg("u1").arg(*p).arg(1);
            }
            command.ignore();
        }
        let mut c = self.conn.clone();
        let _: () = pipe.query_async(&mut c).await?;
        Ok(())
    }

    /// Whether the filter is complete (bit 0).
    pub async fn seen_complete(&self) -> Result<bool, CacheError> {
        let mut c = self.conn.clone();
        let bit: i64 = redis::cmd("GETBIT")
            .arg(self.names.seen())
            .arg(0)
            .query_async(&mut c)
            .await?;
        Ok(bit == 1)
    }

    /// Ends a rebuild: marks the filter complete and frees the lock, if `holder` still
    /// holds it (a Redis that lost the filter during the rebuild lost the lock too).
    pub async fn complete_seen(&self, holder: &str) -> Result<bool, CacheError> {
        let mut c = self.conn.clone();
        let done: i64 = self
            .scripts
            .complete_seen
            .key(self.names.seen())
            .key(self.names.seen_rebuild())
            .arg(holder)
            .invoke_async(&mut c)
            .await?;
        Ok(done == 1)
    }

    /// Takes the rebuild lock for `ttl` if nobody holds it.
    pub async fn lock_seen_rebuild(&self, holder: &str, ttl: Duration) -> Result<bool, CacheError> {
        let mut c = self.conn.clone();
        let taken: Option<String> = redis::cmd("SET")
            .arg(self.names.seen_rebuild())
            .arg(holder)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut c)
            .await?;
        Ok(taken.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_positions_are_stable_in_range_and_never_the_completeness_bit() {
        let a = seen_positions(1 << 16, "m1", "transaction", "ORDER-1");
        assert_eq!(a, seen_positions(1 << 16, "m1", "transaction", "ORDER-1"));
        assert!(a.iter().all(|p| (1..1 << 16).contains(p)), "{a:?}");
        // Each part of the id counts, and where one part ends and the next begins too.
        for other in [
            seen_positions(1 << 16, "m2", "transaction", "ORDER-1"),
            seen_positions(1 << 16, "m1", "payment", "ORDER-1"),
            seen_positions(1 << 16, "m1", "transaction", "ORDER-2"),
            seen_positions(1 << 16, "m1t", "ransaction", "ORDER-1"),
        ] {
            assert_ne!(a, other);
        }
        let big = seen_positions(SEEN_BITS, "m1", "transaction", "ORDER-1");
        assert!(big.iter().all(|p| (1..SEEN_BITS).contains(p)), "{big:?}");
    }
}
