//! Not written yet.

use crate::cli::PruneArgs;
use crate::context::Ctx;
use crate::error::{Error, Result};

pub async fn run(_ctx: &Ctx, _args: &PruneArgs) -> Result<i32> {
    Err(Error::usage("not implemented yet"))
}
