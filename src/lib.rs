//! grattr: Tencent Cloud Chat group custom attributes as reviewed code.
//!
//! The data flows one way: [`desired`] and [`lockfile`] load the desired and the
//! last-applied state, [`plan`] diffs them (pure), [`apply`] guards and executes a plan
//! through the [`api`] client and records each success in the lockfile; [`workspace`]
//! is what every command and `watch` plan from, and where a saved plan is verified. [`live`] reads what
//! is live and [`drift`] compares the three states; [`watch`] runs the same path on
//! file events. [`emulator`] stands in for the REST API. [`model`] holds the domain
//! types and the one table of limits; [`cli`] is the only module that prints (large
//! documents through one buffered writer), and [`escape`] says how text grattr does not control
//! is written in each kind of output; [`files`] writes files atomically for all of them.

pub mod api;
pub mod apply;
pub mod cli;
pub mod desired;
pub mod drift;
pub mod emulator;
pub mod escape;
pub mod files;
pub mod live;
pub mod lockfile;
pub mod model;
pub mod plan;
pub mod state;
pub mod watch;
pub mod workspace;
