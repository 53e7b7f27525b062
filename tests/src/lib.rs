//! Workspace integration tests live in `tests/`. This library only carries the guides of
//! `docs/guides/` as doctests, so `cargo test -p strata-tests --doc` compiles (and, where
//! no credentials are needed, runs) every Rust snippet a user may copy from them.

/// `docs/guides/000-multi-bucket-reads.md`.
#[cfg(doctest)]
#[doc = include_str!("../../docs/guides/000-multi-bucket-reads.md")]
pub mod guide_000_multi_bucket_reads {}

/// `docs/guides/001-r2-helpers.md`.
#[cfg(doctest)]
#[doc = include_str!("../../docs/guides/001-r2-helpers.md")]
pub mod guide_001_r2_helpers {}

/// `docs/guides/002-provider-abstraction.md`.
#[cfg(doctest)]
#[doc = include_str!("../../docs/guides/002-provider-abstraction.md")]
pub mod guide_002_provider_abstraction {}

/// `docs/guides/003-r2-manifests.md`.
#[cfg(doctest)]
#[doc = include_str!("../../docs/guides/003-r2-manifests.md")]
pub mod guide_003_r2_manifests {}

/// `docs/guides/004-multi-bucket-per-type.md`.
#[cfg(doctest)]
#[doc = include_str!("../../docs/guides/004-multi-bucket-per-type.md")]
pub mod guide_004_multi_bucket_per_type {}
