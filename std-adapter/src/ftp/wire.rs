//! The file protocol's headers: `unstick-core`'s [`files`](unstick_core::files) messages, one
//! type per message, which encode with borrowed strings and decode with owned ones.

pub use unstick_core::FileOp;
pub use unstick_core::files::*;
