//! Text search over manifest entries: queries, ranking and paging.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::format::Format;
use crate::manifest::{EntryFilter, ManifestEntry};
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

/// Score of `entry`'s indexed text for `terms`; `None` when a term is missing.
pub(crate) fn manifest_score(entry: &ManifestEntry, terms: &[String]) -> Option<u64> {
    let mut score = 0;
    for term in terms {
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
    Some(score)
}

/// Rank and page scored hits.
pub(crate) fn page(mut hits: Vec<SearchHit>, scanned: usize, query: &SearchQuery) -> SearchResults {
    hits.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then_with(|| newest(&b.entry).cmp(&newest(&a.entry)))
            .then_with(|| a.entry.key.cmp(&b.entry.key))
    });
    let total = hits.len();
    let limit = query.limit.max(1);
    let hits: Vec<SearchHit> = hits.into_iter().skip(query.offset).take(limit).collect();
    let end = query.offset.saturating_add(hits.len());
    SearchResults {
        hits,
        total,
        next_offset: (end < total).then_some(end),
        scanned,
    }
}

fn newest(e: &ManifestEntry) -> DateTime<Utc> {
    e.max_time
}

/// Manifest-only search over `candidates` (already filtered).
pub(crate) fn rank(candidates: Vec<ManifestEntry>, query: &SearchQuery) -> SearchResults {
    let terms = query.terms();
    let scanned = candidates.len();
    let hits = candidates
        .into_iter()
        .filter_map(|entry| {
            manifest_score(&entry, &terms).map(|score| SearchHit {
                entry,
                score,
                matched_rows: None,
            })
        })
        .collect();
    page(hits, scanned, query)
}
