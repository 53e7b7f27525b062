//! `Manifest::search` gives exactly what the search before the column-wise path gave: every
//! entry the scan keeps, scored, fully sorted, then paged. Checked over layouts that exercise
//! each path (one Parquet part; several parts and segments replacing each other's keys;
//! segments only) and over queries that exercise each filter and page boundary; plus what the
//! per-handle head and footer cache reads.

#![cfg(feature = "parquet")]

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use storage_core::Bucket;
use storage_manifest::{
    Format, Manifest, ManifestEntry, ManifestOptions, SearchHit, SearchQuery, SearchResults,
    TimeRange, new_id,
};
use strata_testkit::CountingStore;

const WORDS: &[&str] = &[
    "coffee",
    "coffeehouse",
    "decaf",
    "tea",
    "rent",
    "taxi",
    "cafe",
    "groceries",
];

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap()
}

/// Entry `i` of generation `generation`: times repeat every 40 entries (so score and time tie
/// and the key decides), texts mix whole words and words inside longer ones.
fn entry(i: usize, generation: usize) -> ManifestEntry {
    let t = start() + Duration::hours((i % 40) as i64 * 6) + Duration::microseconds(i as i64 % 3);
    let id = new_id(t);
    let text = format!(
        "{} {} {}{}",
        WORDS[(i + generation) % WORDS.len()],
        WORDS[(i / 3) % WORDS.len()],
        WORDS[(i * 5 + generation) % WORDS.len()],
        i % 7
    );
    ManifestEntry {
        key: format!("m/u/{}/{id}-{i:04}.jsonl", t.format("%Y/%m/%d")),
        id,
        format: [Format::Jsonl, Format::Parquet, Format::Json][i % 3],
        rows: (i * 10 + generation) as u64,
        bytes: 100 + i as u64,
        min_time: t,
        max_time: t + Duration::minutes((i % 5) as i64 * 30),
        etag: (!i.is_multiple_of(4)).then(|| format!("\"e{i}-{generation}\"")),
        created: t,
        time_field: (!i.is_multiple_of(6)).then(|| "timestamp".to_string()),
        text,
        text_truncated: i.is_multiple_of(11),
        tags: if i % 4 == 1 {
            BTreeMap::from([("source".to_string(), "bank".to_string())])
        } else {
            BTreeMap::new()
        },
    }
}

/// Re-use the key of `old` for a changed entry (a later append replacing it).
fn replacing(old: &ManifestEntry, i: usize, generation: usize) -> ManifestEntry {
    ManifestEntry {
        key: old.key.clone(),
        ..entry(i, generation)
    }
}

/// The search as it was: every entry the scan keeps, scored word by word, fully sorted.
async fn reference(m: &Manifest, q: &SearchQuery) -> SearchResults {
    let candidates = m.scan(&q.filter()).await.unwrap();
    let scanned = candidates.len();
    let terms = q.terms();
    let mut hits: Vec<SearchHit> = candidates
        .into_iter()
        .filter_map(|entry| {
            let mut score = 0;
            for term in &terms {
                let mut found = false;
                for word in entry.text.split(' ') {
                    if word == term {
                        score += 2;
                        found = true;
                    } else if word.contains(term.as_str()) {
                        score += 1;
                        found = true;
                    }
                }
                if !found {
                    return None;
                }
            }
            Some(SearchHit {
                entry,
                score,
                matched_rows: None,
            })
        })
        .collect();
    hits.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then_with(|| b.entry.max_time.cmp(&a.entry.max_time))
            .then_with(|| a.entry.key.cmp(&b.entry.key))
    });
    let total = hits.len();
    let hits: Vec<SearchHit> = hits
        .into_iter()
        .skip(q.offset)
        .take(q.limit.max(1))
        .collect();
    let end = q.offset + hits.len();
    SearchResults {
        hits,
        total,
        next_offset: (end < total).then_some(end),
        scanned,
    }
}

fn queries() -> Vec<SearchQuery> {
    let day = |d: i64| start() + Duration::days(d);
    // A bound half a microsecond after an entry's max_time: that entry must stay out.
    let odd = entry(13, 0).max_time + Duration::nanoseconds(500);
    let windows = [
        TimeRange::all(),
        TimeRange::between(day(2), day(3)).unwrap(),
        TimeRange::since(day(7)),
        TimeRange::until(day(4)),
        TimeRange::between(odd, odd + Duration::hours(20)).unwrap(),
        TimeRange::between(odd - Duration::hours(20), odd).unwrap(),
        TimeRange::between(day(30), day(31)).unwrap(),
    ];
    let mut out = Vec::new();
    for text in ["", "coffee", "caf", "COFFEE tea", "decaf rent2", "nothing"] {
        for range in windows {
            for (offset, limit) in [(0, 5), (3, 10), (0, 1000), (190, 20)] {
                out.push(SearchQuery::new(text).with_range(range).page(offset, limit));
            }
        }
        out.push(
            SearchQuery::new(text)
                .with_format(Format::Parquet)
                .page(0, 7),
        );
        out.push(SearchQuery::new(text).with_tag("source", "bank").page(2, 9));
        out.push(
            SearchQuery::new(text)
                .with_tag("source", "bank")
                .with_format(Format::Json)
                .with_range(TimeRange::since(day(3)))
                .page(0, 0),
        );
    }
    out
}

async fn assert_same_as_before(m: &Manifest, layout: &str) {
    let mut nonempty = 0;
    for q in queries() {
        let want = reference(m, &q).await;
        let got = m.search(&q).await.unwrap();
        assert_eq!(got, want, "{layout}: {q:?}");
        nonempty += usize::from(!got.hits.is_empty());
    }
    assert!(
        nonempty > 60,
        "{layout}: the queries must find things ({nonempty})"
    );
}

fn options() -> ManifestOptions {
    ManifestOptions {
        auto_compact_segments: None,
        row_group_rows: 7,
        ..Default::default()
    }
}

/// A manifest in `bucket` that compacts only when told to, in parts of small row groups.
fn manifest(bucket: Bucket) -> Manifest {
    Manifest::new(bucket, "m", "u")
        .unwrap()
        .with_options(options())
}

/// `n` entries of generation 0.
fn entries(n: usize) -> Vec<ManifestEntry> {
    (0..n).map(|i| entry(i, 0)).collect()
}

/// A manifest in memory of 200 entries appended `chunk` at a time: one segment per append.
async fn appended_in_chunks(chunk: usize) -> Manifest {
    let m = manifest(Bucket::memory("s"));
    for part in entries(200).chunks(chunk) {
        m.append(part).await.unwrap();
    }
    m
}

#[tokio::test]
async fn one_parquet_part_searches_as_before() {
    let m = appended_in_chunks(50).await;
    m.compact_all().await.unwrap();
    let head = m.head().await.unwrap();
    assert_eq!((head.parts.len(), head.segments.len()), (1, 0));
    assert_same_as_before(&m, "one part").await;
}

/// Two Parquet parts and three segments, each later one re-listing keys of earlier ones (and
/// a segment listing one key twice): the later entry is the one found.
#[tokio::test]
async fn parts_and_segments_replacing_keys_search_as_before() {
    let m = manifest(Bucket::memory("s"));
    let first = entries(120);
    m.append(&first).await.unwrap();
    m.compact().await.unwrap();
    let mut second: Vec<ManifestEntry> = (120..200).map(|i| entry(i, 1)).collect();
    second.extend((0..120).step_by(4).map(|i| replacing(&first[i], i + 1, 1)));
    m.append(&second).await.unwrap();
    m.compact().await.unwrap();
    let mut third: Vec<ManifestEntry> = (200..230).map(|i| entry(i, 2)).collect();
    third.extend((0..200).step_by(9).map(|i| {
        let old = if i < 120 { &first[i] } else { &second[i - 120] };
        replacing(old, i + 2, 2)
    }));
    m.append(&third[..20]).await.unwrap();
    m.append(&third[20..]).await.unwrap();
    m.append(&[replacing(&third[3], 7, 3), replacing(&third[3], 8, 4)])
        .await
        .unwrap();
    let head = m.head().await.unwrap();
    assert_eq!((head.parts.len(), head.segments.len()), (2, 3));
    assert_same_as_before(&m, "parts and segments").await;
}

#[tokio::test]
async fn segments_only_search_as_before() {
    let m = appended_in_chunks(60).await;
    assert_same_as_before(&m, "segments").await;
}

/// A handle reads `head.json` and a part's footer once: later searches revalidate the head by
/// ETag (answered "not modified", no body) and reuse the footer. The first footer read is one
/// GET of exactly the footer's length. A head changed by another handle is seen at once.
#[tokio::test]
async fn head_and_footer_are_read_once_per_handle() {
    let (bucket, counting) = CountingStore::wrap(&Bucket::memory("s"));
    let writer = manifest(bucket.clone());
    writer.append(&entries(200)).await.unwrap();
    writer.compact_all().await.unwrap();
    let part = writer.head().await.unwrap().parts[0].clone();
    let footer = part
        .footer_bytes
        .expect("a Parquet part records its footer");
    let head_len = bucket
        .get("manifests/m/u/head.json")
        .await
        .unwrap()
        .bytes
        .len() as u64;

    let m = Manifest::new(bucket.clone(), "m", "u").unwrap();
    let q = SearchQuery::new("coffee").page(0, 3);
    let before = counting.snapshot();
    let first = m.search(&q).await.unwrap();
    let mid = counting.snapshot();
    let second = m.search(&q).await.unwrap();
    let after = counting.snapshot();
    assert_eq!(first, second);
    let (first_gets, first_bytes) = (mid.0 - before.0, mid.1 - before.1);
    let (second_gets, second_bytes) = (after.0 - mid.0, after.1 - mid.1);
    // The counting store counts answered GETs; a "not modified" head is none.
    assert_eq!(first_gets - second_gets, 2, "head and footer, once");
    assert_eq!(first_bytes - second_bytes, head_len + footer);

    // A clone shares the cache; another handle's append is seen on the next search.
    let clone = m.clone();
    let added = ManifestEntry {
        text: "coffee coffee coffee".into(),
        ..entry(500, 9)
    };
    writer.append(std::slice::from_ref(&added)).await.unwrap();
    let third = clone.search(&q).await.unwrap();
    assert_eq!(third.total, first.total + 1);
    assert_eq!(third.hits[0].entry, added);
}

/// `Dataset` keeps one manifest handle per module and user, so its searches share the cache.
#[tokio::test]
async fn dataset_searches_reuse_one_handle() {
    let (bucket, counting) = CountingStore::wrap(&Bucket::memory("s"));
    let ds = storage_manifest::Dataset::new(bucket);
    for n in 0..3 {
        ds.write(
            "m",
            "u",
            &[serde_json::json!({ "memo": format!("coffee {n}") })],
            Format::Jsonl,
        )
        .await
        .unwrap();
    }
    ds.manifest("m", "u").unwrap().compact_all().await.unwrap();
    let q = SearchQuery::new("coffee");
    let before = counting.snapshot();
    let first = ds.search("m", "u", &q).await.unwrap();
    let mid = counting.snapshot();
    let second = ds.clone().search("m", "u", &q).await.unwrap();
    let after = counting.snapshot();
    assert_eq!((first.total, &first), (3, &second));
    assert_eq!(
        (mid.0 - before.0) - (after.0 - mid.0),
        2,
        "head and footer, once"
    );
}

/// On a local folder too, a cached head is revalidated: another handle's append and
/// compaction are seen by the next search.
#[tokio::test]
async fn a_cached_head_is_revalidated_on_a_local_folder() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = Bucket::local("s", dir.path()).unwrap();
    let writer = manifest(bucket.clone());
    let reader = Manifest::new(bucket, "m", "u").unwrap();
    let q = SearchQuery::new("");
    writer.append(&[entry(0, 0)]).await.unwrap();
    writer.compact_all().await.unwrap();
    assert_eq!(reader.search(&q).await.unwrap().total, 1);
    assert_eq!(reader.search(&q).await.unwrap().total, 1);
    writer.append(&[entry(1, 0)]).await.unwrap();
    assert_eq!(reader.search(&q).await.unwrap().total, 2);
    writer.compact_all().await.unwrap();
    let after = reader.search(&q).await.unwrap();
    assert_eq!(after.total, 2);
    assert_eq!(after, reference(&reader, &q).await);
}
