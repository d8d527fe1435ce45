//! One random stream per purpose, all derived from the run's seed, so that (say)
//! editing the workload does not reshuffle the faults.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a stream is for; with an index (node, client, incarnation) it names a stream.
#[derive(Clone, Copy, Debug)]
#[repr(u64)]
pub enum Purpose {
    Network = 1,
    Schedule = 2,
    Crash = 3,
    Node = 4,
    Client = 5,
    /// Sync latencies of every node's disk.
    Disk = 6,
    /// Handler delays of `slow` faults (drawn only while one is active).
    Slow = 7,
}

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
