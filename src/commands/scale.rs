//! Not written yet.

use crate::cli::ScaleArgs;
use crate::context::Ctx;
use crate::error::{Error, Result};

pub async fn run(_ctx: &Ctx, _args: &ScaleArgs) -> Result<i32> {
    Err(Error::usage("not implemented yet"))
}
