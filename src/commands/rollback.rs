//! Not written yet.

use crate::cli::RollbackArgs;
use crate::context::Ctx;
use crate::error::{Error, Result};

pub async fn run(_ctx: &Ctx, _args: &RollbackArgs) -> Result<i32> {
    Err(Error::usage("not implemented yet"))
}
