//! Wrapping stores in layers.

use std::sync::Arc;

use crate::store::StrataStore;

/// Something that wraps a store in another store with added behaviour (retry, cache, ...).
///
/// A layer's output is itself a [`StrataStore`] (and so an `ObjectStore`): layers compose,
/// every operation of the contract passes through each of them, and any Strata store can be
/// handed to code that expects a plain `object_store` store.
pub trait Layer: Send + Sync {
    /// Wrap `inner`.
    fn layer(&self, inner: Arc<dyn StrataStore>) -> Arc<dyn StrataStore>;
}

impl<F> Layer for F
where
    F: Fn(Arc<dyn StrataStore>) -> Arc<dyn StrataStore> + Send + Sync,
{
    fn layer(&self, inner: Arc<dyn StrataStore>) -> Arc<dyn StrataStore> {
        self(inner)
    }
}

/// Builds a stack of layers. Layers are listed outermost first, like `tower::ServiceBuilder`:
/// the first layer added sees each call first.
///
/// ```
/// use std::sync::Arc;
/// use storage_core::{MemoryStore, StackBuilder, StrataStore};
///
/// let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
/// let counted = calls.clone();
/// let store = StackBuilder::new()
///     .layer(move |inner: Arc<dyn StrataStore>| {
///         counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
///         inner
///     })
///     .build(Arc::new(MemoryStore::new()));
/// assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
/// # let _ = store;
/// ```
#[derive(Default)]
pub struct StackBuilder {
    layers: Vec<Box<dyn Layer>>,
}

impl StackBuilder {
    /// An empty stack.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a layer inside the ones already added.
    pub fn layer(mut self, layer: impl Layer + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether no layer was added.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Wrap `store`: the last layer added wraps it first, the first added ends outermost.
    pub fn build(self, store: Arc<dyn StrataStore>) -> Arc<dyn StrataStore> {
        self.layers
            .iter()
            .rev()
            .fold(store, |inner, layer| layer.layer(inner))
    }
}

impl std::fmt::Debug for StackBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackBuilder")
            .field("layers", &self.layers.len())
            .finish()
    }
}
