//! grattr: Tencent Cloud Chat group custom attributes as reviewed code.
//!
//! The data flows one way: [`desired`] and [`lockfile`] load the desired and the
//! last-applied state, [`plan`] diffs them, and the command line renders the plan.

pub mod api;
pub mod apply;
pub mod cli;
pub mod desired;
pub mod drift;
pub mod emulator;
pub mod live;
pub mod lockfile;
pub mod model;
pub mod plan;
pub mod watch;
