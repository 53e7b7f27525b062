//! Temporary profiling driver (not committed).
use std::sync::Arc;
use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, path::Path};
use storage_core::{Bucket, PutOpts};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 { return; }
    let (backend, which, n): (&str, &str, usize) = (&args[1], &args[2], args[3].parse().unwrap());
    let size: usize = args.get(4).map(|s| s.parse().unwrap()).unwrap_or(4096);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (raw, bucket): (Arc<dyn ObjectStore>, Bucket) = match backend {
        "memory" => (Arc::new(object_store::memory::InMemory::new()), Bucket::memory("b")),
        _ => {
            std::fs::create_dir_all(dir.path().join("raw")).unwrap();
            (Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path().join("raw")).unwrap()),
             Bucket::local("b", dir.path().join("s")).unwrap())
        }
    };
    let payload = Bytes::from(vec![0x5a; size]);
    rt.block_on(async {
        for round in 0..3 {
            let t = std::time::Instant::now();
            for i in 0..n {
                if which == "raw" {
                    raw.put(&Path::from(format!("bench/raw/{i}")), PutPayload::from(payload.clone())).await.unwrap();
                } else {
                    bucket.put_with(format!("bench/strata/{i}"), payload.clone(), PutOpts::default()).await.unwrap();
                }
            }
            let put = t.elapsed();
            let t = std::time::Instant::now();
            for i in 0..n {
                if which == "raw" {
                    let b = raw.get(&Path::from(format!("bench/raw/{i}"))).await.unwrap().bytes().await.unwrap();
                    assert_eq!(b.len(), size);
                } else {
                    let o = bucket.get(format!("bench/strata/{i}")).await.unwrap();
                    assert_eq!(o.bytes.len(), size);
                }
            }
            let get = t.elapsed();
            eprintln!("{backend} {which} round {round}: put {:.2} us/op, get {:.2} us/op", put.as_secs_f64()*1e6/n as f64, get.as_secs_f64()*1e6/n as f64);
        }
    });
}
