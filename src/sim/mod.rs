//! The simulation driver on madsim: network, storage, clocks, faults and trace.

#![warn(missing_docs)]

mod clock;
mod disk;
mod driver;
mod mailbox;
pub mod network;
pub mod trace;
mod world;

pub use driver::{simulate, SimResult};
pub use world::{Failure, FailureKind};
