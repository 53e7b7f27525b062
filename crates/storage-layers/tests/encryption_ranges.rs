//! A 1 MiB range read of a 100 MiB encrypted object fetches only the chunks it needs:
//! bytes fetched from the backend are counted by a metrics layer placed *below* the
//! encryption layer (the counting wrapper), not timed.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use storage_core::{Layer, MemoryStore};
use storage_layers::encryption::{CHUNK_SIZE, HEADER_LEN, TAG_LEN, stored_len};
use storage_layers::metrics::MetricsLayer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mib_range_of_100_mib_reads_only_its_chunks() {
    const MIB: u64 = 1024 * 1024;
    let backend: Arc<dyn storage_core::StrataStore> = Arc::new(MemoryStore::new());
    let counting = MetricsLayer::new("backend");
    let store = common::encryption().layer(counting.layer(Arc::clone(&backend)));

    let pattern: Vec<u8> = (0..=252u8).collect();
    let mut plain = vec![0u8; (100 * MIB) as usize];
    for piece in plain.chunks_mut(pattern.len()) {
        piece.copy_from_slice(&pattern[..piece.len()]);
    }
    let plain = Bytes::from(plain);
    let p = Path::from("big.bin");
    store.put(&p, plain.clone().into()).await.unwrap();
    assert_eq!(backend.head(&p).await.unwrap().size, stored_len(100 * MIB));
    let before = counting.stats().ops.get("get").map_or(0, |o| o.bytes);

    // A 1 MiB range that starts mid-chunk, so it touches 17 chunks.
    let start = 37 * MIB + 12_345;
    let range = start..start + MIB;
    let got = store.get_range(&p, range.clone()).await.unwrap();
    assert_eq!(got, plain.slice(range.start as usize..range.end as usize));

    let fetched = counting.stats().ops["get"].bytes - before;
    let chunks = (range.end - 1) / CHUNK_SIZE - range.start / CHUNK_SIZE + 1;
    let expected = HEADER_LEN + chunks * (CHUNK_SIZE + TAG_LEN);
    println!(
        "range of {} bytes fetched {fetched} bytes from the backend ({chunks} chunks + header), of {} stored",
        MIB,
        stored_len(100 * MIB)
    );
    assert_eq!(chunks, 17);
    assert_eq!(fetched, expected);
    assert!(fetched < MIB + 2 * CHUNK_SIZE);
}
