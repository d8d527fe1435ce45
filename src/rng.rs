//! One random stream per purpose, all derived from the run's seed, so that (say)
//! editing the workload does not reshuffle the faults.

#![warn(missing_docs)]

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a stream is for; with an index (node, client, incarnation) it names a stream.
#[derive(Clone, Copy, Debug)]
#[repr(u64)]
pub enum Purpose {
    /// Message fates: latency, loss, duplication, reordering.
    Network = 1,
    /// The fault schedule drawn from `[random]`.
    Schedule = 2,
    /// Which prefix of the unsynced writes a torn crash keeps.
    Crash = 3,
    /// A node incarnation's [`crate::Context::rng`] (index: node and incarnation).
    Node = 4,
    /// A client's [`crate::ClientContext::rng`] (index: the client).
    Client = 5,
    /// Sync latencies of every node's disk.
    Disk = 6,
    /// Handler delays of `slow` faults (drawn only while one is active).
    Slow = 7,
    /// A swarm-testing seed's fault kinds and interval (`[random] swarm = true`).
    Swarm = 8,
    /// The nodes a fault aimed at a random role (`minority`, `majority`, `one`)
    /// strikes, drawn when it starts.
    Target = 9,
}

/// The ChaCha8 stream for `purpose` and `index` (below 2^48) of run `seed`: ChaCha8
/// seeded with `seed`, its 64-bit stream number `purpose << 48 | index`. Panics on
/// an index of 2^48 or more.
pub fn stream(seed: u64, purpose: Purpose, index: u64) -> ChaCha8Rng {
    assert!(index < 1 << 48, "stream index {index} too large");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(((purpose as u64) << 48) | index);
    rng
}

/// A uniform index in `range`, drawn the same way on every target: through `u64`, not
/// `usize`, whose sampling draws 32 bits on a 32-bit target and 64 on a 64-bit one. On
/// a 64-bit target it is exactly `rng.gen_range(range)`.
pub fn index(rng: &mut impl rand::Rng, range: std::ops::Range<usize>) -> usize {
    rng.gen_range(range.start as u64..range.end as u64) as usize
}
