//! Not written yet.

use crate::cli::CanaryArgs;
use crate::context::Ctx;
use crate::error::{Error, Result};

pub async fn run(_ctx: &Ctx, _args: &CanaryArgs) -> Result<i32> {
    Err(Error::usage("not implemented yet"))
}
