//! Everything grattr says to Tencent Cloud Chat: UserSig, the HTTP client, the
//! endpoints and bodies, and the one table of error codes.

pub mod client;
pub mod codes;
mod error;
mod rate;
mod redact;
pub mod scope;
pub mod usersig;
pub mod wire;
