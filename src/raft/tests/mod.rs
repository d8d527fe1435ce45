//! Tests without the simulator: processes driven by hand-made contexts, and a tiny
//! in-test network ([`net::Net`]) that routes their effects with a seeded RNG.

mod bugs;
mod checkers;
mod fuzz;
mod membership;
mod net;
mod paper;
mod state_machine;
