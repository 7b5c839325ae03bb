//! What the shell protocol puts on the wire: the no_std vocabulary of `unstick-core`'s
//! [`shell`](unstick_core::shell) module (request and reply headers, telling a framed client
//! from a seed client, runnable commands, the seed reply formats), used as it is.

pub use unstick_core::shell::*;
