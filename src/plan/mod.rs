//! Pure planning: what a command will change, in what order, behind which gates.

pub mod gate;
pub mod rollout;
pub mod scale;
pub mod steps;
