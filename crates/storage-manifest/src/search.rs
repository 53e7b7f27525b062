//! Text search over manifest entries: queries, scoring, and ranking a page without sorting
//! every hit.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::entry::{EntryFilter, ManifestEntry};
use crate::format::Format;
use crate::time_range::TimeRange;

/// Default page size.
pub const DEFAULT_PAGE_SIZE: usize = 50;

/// A search: words (all must occur, case-insensitive, as substrings of the indexed words),
/// filters, paging, and whether to confirm in the files.
///
/// ```
/// use storage_manifest::{Format, SearchQuery};
/// let q = SearchQuery::new("coffee").with_format(Format::Jsonl).with_tag("source", "bank").page(0, 20);
/// assert_eq!(q.terms(), vec!["coffee".to_string()]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// The query text; empty matches every entry that passes the filters.
    pub text: String,
    /// Only entries (and, in a deep search, records) in this window.
    pub range: TimeRange,
    /// Only this format.
    pub format: Option<Format>,
    /// Only entries carrying all these tags.
    pub tags: BTreeMap<String, String>,
    /// Hits to skip (paging).
    pub offset: usize,
    /// Hits per page.
    pub limit: usize,
    /// Confirm in the files: read every candidate file and count the records that contain
    /// every word. Finds words the manifest's capped index text left out, and drops entries
    /// whose files no longer contain the words.
    pub deep: bool,
}

impl SearchQuery {
    /// A query for `text` with no filters, first page.
    pub fn new(text: impl Into<String>) -> Self {
        SearchQuery {
            text: text.into(),
            range: TimeRange::all(),
            format: None,
            tags: BTreeMap::new(),
            offset: 0,
            limit: DEFAULT_PAGE_SIZE,
            deep: false,
        }
    }

    /// Only entries overlapping `range`.
    pub fn with_range(mut self, range: TimeRange) -> Self {
        self.range = range;
        self
    }

    /// Only files of `format`.
    pub fn with_format(mut self, format: Format) -> Self {
        self.format = Some(format);
        self
    }

    /// Only entries tagged `key=value`.
    pub fn with_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// The page starting at hit `offset`, of at most `limit` hits.
    pub fn page(mut self, offset: usize, limit: usize) -> Self {
        self.offset = offset;
        self.limit = limit;
        self
    }

    /// Confirm hits in the files (see [`SearchQuery::deep`]).
    pub fn deep(mut self, deep: bool) -> Self {
        self.deep = deep;
        self
    }

    /// The lowercase words of the query.
    pub fn terms(&self) -> Vec<String> {
        self.text
            .split_whitespace()
            .map(str::to_lowercase)
            .collect()
    }

    /// The entry filter part of the query.
    pub fn filter(&self) -> EntryFilter {
        EntryFilter {
            range: self.range,
            format: self.format,
            tags: self.tags.clone(),
        }
    }
}

/// One search hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SearchHit {
    /// The file's manifest entry.
    pub entry: ManifestEntry,
    /// Relevance: higher is better. Manifest search: 2 per query word found as a whole
    /// indexed word, 1 per word found inside a longer one. Deep search: matching records.
    pub score: u64,
    /// Deep search only: records in the file (and time window) containing every word.
    pub matched_rows: Option<u64>,
}

/// A page of hits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SearchResults {
    /// The hits on this page, best first (ties: newest first).
    pub hits: Vec<SearchHit>,
    /// Hits in all pages.
    pub total: usize,
    /// Offset of the next page, if there is one.
    pub next_offset: Option<usize>,
    /// Manifest entries that passed the filters and were examined.
    pub scanned: usize,
}

/// Score of indexed `text` for `terms`; `None` when a term is missing.
///
/// Terms hold no whitespace (they come from `split_whitespace`), so a term occurs inside some
/// space-separated word exactly when it occurs in `text`: one substring search rejects most
/// entries before any word is looked at.
pub(crate) fn text_score(text: &str, terms: &[String]) -> Option<u64> {
    if !terms.iter().all(|t| text.contains(t.as_str())) {
        return None;
    }
    let mut score = 0;
    for term in terms {
        for word in text.split(' ') {
            if word == term {
                score += 2;
            } else if word.contains(term.as_str()) {
                score += 1;
            }
        }
    }
    Some(score)
}

/// Rank order of hits: higher score first, then newest `max_time`, then key. Keys are unique
/// among the hits of one search, so this is a total order and every page is deterministic.
pub(crate) fn rank_order(a: (u64, DateTime<Utc>, &str), b: (u64, DateTime<Utc>, &str)) -> Ordering {
    b.0.cmp(&a.0)
        .then_with(|| b.1.cmp(&a.1))
        .then_with(|| a.2.cmp(b.2))
}

/// Where a search hit's entry is: already read (segments, JSONL parts), or a row of a
/// compacted Parquet part, read in full only if it makes the page.
#[derive(Debug)]
pub(crate) enum Found {
    Entry(Box<ManifestEntry>),
    #[cfg(feature = "parquet")]
    Row {
        part: usize,
        row: u64,
    },
}

/// A ranked candidate: what orders it, and how to fetch its entry once it makes the page.
#[derive(Debug)]
pub(crate) struct Ranked<T> {
    pub score: u64,
    pub newest: DateTime<Utc>,
    pub key: String,
    pub found: T,
}

impl<T> Ranked<T> {
    fn order(&self) -> (u64, DateTime<Utc>, &str) {
        (self.score, self.newest, &self.key)
    }
}

impl<T> PartialEq for Ranked<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<T> Eq for Ranked<T> {}

impl<T> PartialOrd for Ranked<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Ranked<T> {
    /// Better hits are smaller, so a max-heap keeps the worst kept hit on top.
    fn cmp(&self, other: &Self) -> Ordering {
        rank_order(self.order(), other.order())
    }
}

/// The best `keep` candidates seen so far, in a bounded heap: O(hits x log(page end)) instead
/// of sorting every hit, and a candidate that cannot make the page allocates nothing.
#[derive(Debug)]
pub(crate) struct TopK<T> {
    keep: usize,
    heap: BinaryHeap<Ranked<T>>,
}

impl<T> TopK<T> {
    /// Room for the hits up to the end of `query`'s page.
    pub fn for_page(query: &SearchQuery) -> Self {
        TopK {
            keep: query.offset.saturating_add(query.limit.max(1)),
            heap: BinaryHeap::new(),
        }
    }

    /// Offer a hit; `found` runs only when it is kept.
    pub fn offer(
        &mut self,
        score: u64,
        newest: DateTime<Utc>,
        key: &str,
        found: impl FnOnce() -> T,
    ) {
        if self.heap.len() >= self.keep {
            match self.heap.peek() {
                Some(worst) if rank_order((score, newest, key), worst.order()).is_lt() => {
                    self.heap.pop();
                }
                _ => return,
            }
        }
        self.heap.push(Ranked {
            score,
            newest,
            key: key.to_string(),
            found: found(),
        });
    }

    /// The hits of `query`'s page, best first.
    pub fn page(self, query: &SearchQuery) -> Vec<Ranked<T>> {
        let mut best = self.heap.into_sorted_vec();
        let start = query.offset.min(best.len());
        best.drain(..start);
        best
    }
}

/// Page fields for `total` hits with `on_page` of them on the page at `query.offset`.
pub(crate) fn results(
    hits: Vec<SearchHit>,
    total: usize,
    scanned: usize,
    query: &SearchQuery,
) -> SearchResults {
    let end = query.offset.saturating_add(hits.len());
    SearchResults {
        hits,
        total,
        next_offset: (end < total).then_some(end),
        scanned,
    }
}

/// Rank and page scored hits (deep search: every hit is already an entry).
pub(crate) fn page(hits: Vec<SearchHit>, scanned: usize, query: &SearchQuery) -> SearchResults {
    let total = hits.len();
    let mut top = TopK::for_page(query);
    for hit in hits {
        let (score, newest) = (hit.score, hit.entry.max_time);
        let key = hit.entry.key.clone();
        top.offer(score, newest, &key, move || hit);
    }
    let hits = top.page(query).into_iter().map(|r| r.found).collect();
    results(hits, total, scanned, query)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(q: &str) -> Vec<String> {
        SearchQuery::new(q).terms()
    }

    #[test]
    fn scores_whole_words_twice_and_inner_words_once() {
        assert_eq!(
            text_score("coffee coffeehouse tea", &terms("coffee")),
            Some(3)
        );
        assert_eq!(text_score("coffee tea", &terms("COFFEE tea")), Some(4));
        assert_eq!(text_score("coffee tea", &terms("coffee milk")), None);
        assert_eq!(text_score("decaf", &terms("caf")), Some(1));
        assert_eq!(text_score("anything", &[]), Some(0));
        assert_eq!(text_score("", &terms("x")), None);
    }

    /// The bounded heap pages exactly as sorting everything would, at every offset.
    #[test]
    fn top_k_pages_like_a_full_sort() {
        let t = |s: i64| DateTime::<Utc>::from_timestamp(s, 0).unwrap();
        let all: Vec<(u64, DateTime<Utc>, String)> = (0..200u64)
            .map(|i| {
                (
                    i * 7 % 5,
                    t((i * 13 % 17) as i64),
                    format!("k{:03}", (i * 31) % 200),
                )
            })
            .collect();
        let mut sorted = all.clone();
        sorted.sort_by(|a, b| rank_order((a.0, a.1, &a.2), (b.0, b.1, &b.2)));
        for (offset, limit) in [(0, 1), (0, 20), (15, 20), (190, 20), (250, 5), (0, 500)] {
            let q = SearchQuery::new("").page(offset, limit);
            let mut top = TopK::for_page(&q);
            for (i, (s, n, k)) in all.iter().enumerate() {
                top.offer(*s, *n, k, || i);
            }
            let got: Vec<String> = top.page(&q).into_iter().map(|r| r.key).collect();
            let want: Vec<String> = sorted
                .iter()
                .skip(offset)
                .take(limit)
                .map(|x| x.2.clone())
                .collect();
            assert_eq!(got, want, "offset {offset} limit {limit}");
        }
    }
}
