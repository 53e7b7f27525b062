//! `cargo bench -p storage-layers` (part of `cargo xtask bench`): what each layer costs.
//!
//! - overhead of each layer on 4 KiB put + get against the bare `MemoryStore`, as a ratio
//!   (rounds interleaved with the bare store, medians: absolute times on shared machines
//!   are noise, ratios measured side by side are the figures);
//! - gzip and zstd throughput and ratio on JSON;
//! - AES-256-GCM chunked encryption throughput (put = encrypt, get = decrypt).
//!
//! Each layer's ratio is also a `BENCH {json}` line (`strata_testkit::bench`) for
//! `cargo xtask bench --report`; `STRATA_BENCH_QUICK=1` runs fewer rounds and operations.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use storage_core::{Layer, MemoryStore};
use storage_layers::breaker::CircuitBreakerLayer;
use storage_layers::cache::CacheLayer;
use storage_layers::chaos::ChaosLayer;
use storage_layers::compression::{Codec, CompressionLayer};
use storage_layers::config::LayersConfig;
use storage_layers::encryption::{EncryptionLayer, Keyring};
use storage_layers::limit::ConcurrencyLimitLayer;
use storage_layers::metrics::MetricsLayer;
use storage_layers::retry::RetryLayer;
use storage_layers::timeout::TimeoutLayer;
use strata_testkit::bench::{Better, Ratio, quick};

const ROUNDS: usize = 7;
const OPS: usize = 2000;

/// Rounds and put+get pairs per round: fewer under `STRATA_BENCH_QUICK`.
fn rounds_ops() -> (usize, usize) {
    if quick() { (3, 500) } else { (ROUNDS, OPS) }
}

fn json(bytes: usize) -> Bytes {
    let mut s = String::with_capacity(bytes + 100);
    let mut i = 0;
    while s.len() < bytes {
        s.push_str(&format!(
            "{{\"id\":{i},\"user\":\"user{}\",\"amount\":{}.{:02},\"tags\":[\"a\",\"b\"],\"ok\":{}}}\n",
            i % 97,
            i * 7 % 1000,
            i % 100,
            i % 3 == 0
        ));
        i += 1;
    }
    s.truncate(bytes);
    Bytes::from(s)
}

async fn put_get_round(store: &dyn ObjectStore, payload: &Bytes) -> Duration {
    let t = Instant::now();
    for i in 0..rounds_ops().1 {
        let p = Path::from(format!("bench/{}", i % 64));
        store.put(&p, payload.clone().into()).await.unwrap();
        let got = store.get(&p).await.unwrap().bytes().await.unwrap();
        assert_eq!(got.len(), payload.len());
    }
    t.elapsed()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

async fn overhead(
    name: &str,
    make: impl Fn(Arc<dyn storage_core::StrataStore>) -> Arc<dyn storage_core::StrataStore>,
) {
    let payload = json(4096);
    let bare: Arc<dyn storage_core::StrataStore> = Arc::new(MemoryStore::new());
    let layered = make(Arc::new(MemoryStore::new()));
    // Warm up both.
    put_get_round(bare.as_ref(), &payload).await;
    put_get_round(layered.as_ref(), &payload).await;
    let mut ratios = Vec::new();
    let mut bare_us = Vec::new();
    let (rounds, ops) = rounds_ops();
    for _ in 0..rounds {
        let b = put_get_round(bare.as_ref(), &payload).await;
        let l = put_get_round(layered.as_ref(), &payload).await;
        ratios.push(l.as_secs_f64() / b.as_secs_f64());
        bare_us.push(b.as_secs_f64() * 1e6 / ops as f64);
    }
    let (ratio, bare) = (median(ratios), median(bare_us));
    println!(
        "{name:<56} {ratio:>6.2}x  (+{:>6.1} µs per put+get; bare {bare:.1} µs)",
        bare * (ratio - 1.0),
    );
    Ratio::new(
        "layers",
        "layer overhead (4 KiB JSON put + get)",
        name,
        ratio,
        Better::Lower,
    )
    .baseline("the bare MemoryStore")
    .rounds(rounds)
    .note(format!(
        "+{:.1} µs per put+get (bare {bare:.1} µs)",
        bare * (ratio - 1.0)
    ))
    .print();
}

fn codec_throughput(codec: Codec, data: &Bytes) {
    let mut c_times = Vec::new();
    let mut d_times = Vec::new();
    let mut size = 0;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let z = codec.compress(data, None).unwrap();
        c_times.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let back = codec.decompress(&z).unwrap();
        d_times.push(t.elapsed().as_secs_f64());
        assert_eq!(back.len(), data.len());
        size = z.len();
    }
    let mb = data.len() as f64 / 1e6;
    println!(
        "{:<6} on {:.0} MB JSON: ratio {:.1}:1, compress {:>6.0} MB/s, decompress {:>6.0} MB/s",
        codec.as_str(),
        mb,
        data.len() as f64 / size as f64,
        mb / median(c_times),
        mb / median(d_times)
    );
}

async fn encryption_throughput() {
    let ring = Keyring::new()
        .with_key("bench", &Keyring::generate_key())
        .unwrap();
    let mem: Arc<dyn storage_core::StrataStore> = Arc::new(MemoryStore::new());
    let enc = EncryptionLayer::new(ring).layer(Arc::clone(&mem));
    let data = Bytes::from(vec![7u8; 64 << 20]);
    let p = Path::from("big");
    // The bare store's own cost of the same put/get, to subtract.
    let mut base_put = Vec::new();
    let mut base_get = Vec::new();
    let mut put = Vec::new();
    let mut get = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        mem.put(&p, data.clone().into()).await.unwrap();
        base_put.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        mem.get(&p).await.unwrap().bytes().await.unwrap();
        base_get.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        enc.put(&p, data.clone().into()).await.unwrap();
        put.push(t.elapsed().as_secs_f64());
        // Consume the body as a stream (as a streaming reader would), without
        // concatenating it into one buffer.
        let t = Instant::now();
        let mut body = enc.get(&p).await.unwrap().into_stream();
        let mut n = 0;
        while let Some(chunk) = futures::StreamExt::next(&mut body).await {
            n += chunk.unwrap().len();
        }
        get.push(t.elapsed().as_secs_f64());
        assert_eq!(n, data.len());
    }
    let mb = data.len() as f64 / 1e6;
    let (bp, bg, ep, eg) = (median(base_put), median(base_get), median(put), median(get));
    println!(
        "AES-256-GCM chunked, 64 MB: encrypt {:>6.0} MB/s, decrypt {:>6.0} MB/s (store time subtracted; one core)",
        mb / (ep - bp).max(1e-9),
        mb / (eg - bg).max(1e-9)
    );
}

/// The cipher alone on 64 KiB chunks, in place: the ceiling for the layer.
fn raw_aes_gcm() {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    let cipher = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[9u8; 32]).unwrap());
    let mut buf = vec![1u8; 64 << 20];
    let nonce = || Nonce::assume_unique_for_key([0u8; 12]);
    let mut enc = Vec::new();
    let mut dec = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let tags: Vec<_> = buf
            .chunks_mut(64 * 1024)
            .map(|c| {
                cipher
                    .seal_in_place_separate_tag(nonce(), Aad::empty(), c)
                    .unwrap()
            })
            .collect();
        enc.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for (c, tag) in buf.chunks_mut(64 * 1024).zip(&tags) {
            cipher
                .open_in_place_separate_tag(nonce(), Aad::empty(), tag.as_ref(), c)
                .unwrap();
        }
        dec.push(t.elapsed().as_secs_f64());
    }
    let mb = buf.len() as f64 / 1e6;
    println!(
        "aws-lc-rs AES-256-GCM alone, 64 KiB chunks in place: encrypt {:>6.0} MB/s, decrypt {:>6.0} MB/s",
        mb / median(enc),
        mb / median(dec)
    );
}

fn main() {
    // Ignore the harness's arguments (`--bench`, filters): this bench always runs whole.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (rounds, ops) = rounds_ops();
        println!("layer overhead on 4 KiB JSON put + get vs the bare MemoryStore (median of {rounds} interleaved rounds of {ops}):");
        overhead("retry", |s| RetryLayer::default().layer(s)).await;
        overhead("timeout", |s| TimeoutLayer::default().layer(s)).await;
        overhead("limit", |s| ConcurrencyLimitLayer::new(64).layer(s)).await;
        overhead("breaker", |s| CircuitBreakerLayer::default().layer(s)).await;
        overhead("metrics (+ tracing span)", |s| MetricsLayer::new("bench").layer(s)).await;
        overhead("chaos (no faults)", |s| ChaosLayer::default().layer(s)).await;
        overhead("cache (revalidate every read)", |s| CacheLayer::default().layer(s)).await;
        overhead("cache (fresh for 60s)", |s| {
            CacheLayer::default()
                .with_revalidate_after(Duration::from_secs(60))
                .layer(s)
        })
        .await;
        overhead("compression gzip", |s| {
            CompressionLayer::default().with_default(Codec::Gzip).layer(s)
        })
        .await;
        overhead("compression zstd", |s| {
            CompressionLayer::default().with_default(Codec::Zstd).layer(s)
        })
        .await;
        overhead("encryption", |s| {
            let ring = Keyring::new().with_key("b", &Keyring::generate_key()).unwrap();
            EncryptionLayer::new(ring).layer(s)
        })
        .await;
        overhead("resilience stack (retry+breaker+limit+timeout+metrics)", |s| {
            let cfg = LayersConfig::from_toml(
                "[metrics]\n[retry]\n[breaker]\n[limit]\n[timeout]\n",
                "bench",
            )
            .unwrap();
            cfg.apply(s).unwrap()
        })
        .await;
        println!();
        let data = json(8 << 20);
        codec_throughput(Codec::Gzip, &data);
        codec_throughput(Codec::Zstd, &data);
        println!();
        raw_aes_gcm();
        encryption_throughput().await;
    });
}
