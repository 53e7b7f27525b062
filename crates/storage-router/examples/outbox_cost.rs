//! What the mirror outbox costs a write: 4 KiB puts through a mirror of two local folders,
//! with and without an outbox (journal on a third local folder), interleaved rounds, with
//! fsync and without. Prints the median speed ratio (with / without) and its range.
//!
//! `cargo run --release -p storage-router --example outbox_cost`

use object_store::{ObjectStore, ObjectStoreExt, path::Path};
use std::sync::Arc;
use std::time::Instant;
use storage_core::{Durability, LocalStore};
use storage_router::{MirrorRequirement, MirrorStore, Outbox};

#[tokio::main]
async fn main() {
    for durability in [Durability::Fsync, Durability::None] {
        let dir = tempfile::tempdir().unwrap();
        let mk = |n: &str| -> Arc<dyn storage_core::StrataStore> {
            Arc::new(
                LocalStore::new(dir.path().join(n))
                    .unwrap()
                    .with_durability(durability),
            )
        };
        let members = vec![("a".to_string(), mk("a")), ("b".to_string(), mk("b"))];
        let plain = MirrorStore::with_requirement(members.clone(), MirrorRequirement::Any);
        let journal: Arc<dyn ObjectStore> = Arc::new(
            LocalStore::new(dir.path().join("j"))
                .unwrap()
                .with_durability(durability),
        );
        let owed = MirrorStore::with_outbox(
            members,
            MirrorRequirement::Any,
            Outbox::new(journal).with_auto_replay(false),
        );
        let body = vec![7u8; 4096];
        let n = if durability == Durability::Fsync {
            40
        } else {
            300
        };
        let mut ratios = Vec::new();
        for round in 0..9 {
            let t = Instant::now();
            for i in 0..n {
                plain
                    .put(&Path::from(format!("p{round}/{i}")), body.clone().into())
                    .await
                    .unwrap();
            }
            let tp = t.elapsed();
            let t = Instant::now();
            for i in 0..n {
                owed.put(&Path::from(format!("o{round}/{i}")), body.clone().into())
                    .await
                    .unwrap();
            }
            let to = t.elapsed();
            ratios.push(tp.as_secs_f64() / to.as_secs_f64());
            if round == 0 {
                println!(
                    "{durability:?} round0: plain {:?}/put, outbox {:?}/put",
                    tp / n,
                    to / n
                );
            }
        }
        ratios.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "{durability:?}: speed with outbox / without, 4 KiB puts, median of 9 rounds: {:.2} (min {:.2}, max {:.2})",
            ratios[4], ratios[0], ratios[8]
        );
    }
}
