//! Everything grattr reads from the repository: `grattr.yaml` and the desired
//! state under `groups/`, with a source location for every key and value, and
//! every validation diagnostic.

mod attributes;
pub mod config;
pub mod diagnostic;
pub mod emit;
mod fast;
pub mod groups;
pub mod index;
pub mod overlays;
pub mod schema;
pub mod shape;
pub mod templates;
pub mod yaml;

pub use crate::model::SourceLocation;
pub use config::{Config, Endpoint, Environment};
pub use diagnostic::{Diagnostic, Related, Rule};
pub use groups::{DesiredGroup, DesiredState, Loaded, load, load_with};
pub use overlays::OverlayPath;
