//! Fault-injection suite (to be written).
