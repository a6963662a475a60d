//! The PostgreSQL store. (Interface only while the store is being built on its branch.)

use super::{Acquired, Key, LeaseInfo, LeaseName, StateError, Stored};
use crate::lockfile::Holder;
use std::time::Duration;

/// A parsed `postgres://` URL.
#[derive(Debug, Clone)]
pub struct Config {
    label: String,
}

impl Config {
    /// Parses a URL.
    pub fn parse(url: &str) -> Result<Config, StateError> {
        Ok(Config { label: url.split('?').next().unwrap_or_default().to_string() })
    }
    /// For people.
    pub fn label(&self) -> String {
        self.label.clone()
    }
}

/// One record in one database.
#[derive(Debug)]
pub struct Postgres {
    label: String,
}

impl Postgres {
    fn no(&self) -> StateError {
        StateError::Unreachable { store: self.label.clone(), message: "not built yet".into() }
    }
    /// Connects.
    pub async fn connect(config: &Config, key: Key) -> Result<Postgres, StateError> {
        Err(StateError::Unreachable { store: format!("{} ({key})", config.label), message: "not built yet".into() })
    }
    /// For messages.
    pub fn label(&self) -> String {
        self.label.clone()
    }
    /// The record.
    pub async fn read(&self) -> Result<Stored, StateError> {
        Err(self.no())
    }
    /// The lease row.
    pub async fn lease(&self, _name: LeaseName) -> Result<Option<LeaseInfo>, StateError> {
        Err(self.no())
    }
    /// Takes the lease.
    pub async fn acquire(&self, _name: LeaseName, _holder: &Holder, _ttl: Duration) -> Result<Acquired, StateError> {
        Err(self.no())
    }
    /// Renews.
    pub async fn renew(&self, _name: LeaseName, _token: u64, _ttl: Duration) -> Result<(), StateError> {
        Err(self.no())
    }
    /// Releases.
    pub async fn release(&self, _name: LeaseName, _token: u64) -> Result<(), StateError> {
        Err(self.no())
    }
    /// Breaks.
    pub async fn break_lease(&self, _name: LeaseName) -> Result<Option<LeaseInfo>, StateError> {
        Err(self.no())
    }
    /// The record's version.
    pub async fn version(&self) -> Result<u64, StateError> {
        Err(self.no())
    }
    /// Appends.
    pub async fn append(&self, _token: u64, _lines: &[Vec<u8>]) -> Result<u64, StateError> {
        Err(self.no())
    }
    /// Checkpoints.
    pub async fn checkpoint(&self, _token: u64, _lockfile: &[u8], _through: i64) -> Result<u64, StateError> {
        Err(self.no())
    }
}
