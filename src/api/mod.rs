//! Everything grattr says to Tencent Cloud Chat: UserSig, the HTTP client, the
//! endpoints, and the one table of error codes.

pub mod usersig;
