//! The local runner behind `alphadome serve`, `demo`, `simulate` and `loadtest`, as a library
//! so tests start the same server in-process. Every decision stays in the `alphadome` core.

pub mod demo;
pub mod loadtest;
pub mod meta;
pub mod serve;
pub mod simulate;
pub mod soak;
pub mod usage;
