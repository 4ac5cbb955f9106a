//! Effects: everything that talks to the API server or waits on it. The decisions
//! these modules act on are in `plan`; what they print goes through `render`/`ui`.

pub mod access;
pub mod canary;
pub mod explain;
pub mod hooks;
pub mod interrupt;
pub mod lease;
pub mod metric_gate;
pub mod prometheus;
pub mod prune;
pub mod read;
pub mod recover;
pub mod recreate;
pub mod resize;
pub mod restart;
pub mod rollback;
pub mod scale;
pub mod verdict;
pub mod watch;
pub mod write;
