//! storage-layers (crate docs written below)

mod util;
#[cfg(feature = "chaos")]
pub mod chaos;
#[cfg(feature = "retry")]
pub mod retry;
#[cfg(feature = "timeout")]
pub mod timeout;
#[cfg(feature = "limit")]
pub mod limit;
#[cfg(feature = "breaker")]
pub mod breaker;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "recovery")]
pub mod recovery;
#[cfg(feature = "compression")]
pub mod compression;
#[cfg(feature = "encryption")]
pub mod encryption;
#[cfg(feature = "cache")]
pub mod cache;
