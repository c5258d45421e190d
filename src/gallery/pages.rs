//! Gallery event pages kept ready to send again. A device's page is asked for far more often
//! than its events change — a gallery left open, a kiosk polling, several viewers — and
//! reading and writing a page of 50 cost the server ~8 times a bare request (BENCHMARKS.md,
//! P5). A page is kept with the catalog generation it was read at (`Gallery::generation`)
//! and sent again only while that generation holds: after any commit anywhere in the catalog,
//! by this server or another process, every kept page is set aside. Only the embedded SQLite
//! catalog knows its generation cheaply; on PostgreSQL every page is read afresh.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::domain::{MediaType, UserId};

/// What a kept page costs besides its body and device name: its slot in the map, the name's
/// and the body's allocations. Generous, so the budget bounds the memory really used even
/// when it is full of empty pages.
const ENTRY_OVERHEAD: usize = 256;

/// What a page depends on besides the catalog: who asks, for which device (as they named
/// it), and which slice.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    pub user: UserId,
    pub device: String,
    pub media_type: Option<MediaType>,
    pub limit: u32,
    pub offset: u64,
}

impl PageKey {
    /// Bytes a kept page is counted as.
    fn cost(&self, page: &Bytes) -> usize {
        page.len() + self.device.len() + ENTRY_OVERHEAD
    }
}

/// Pages of one catalog generation, within a byte budget.
pub struct PageMemo {
    budget: usize,
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    generation: u64,
    bytes: usize,
    pages: HashMap<PageKey, Bytes>,
}

impl Kept {
    fn empty(&mut self, generation: u64) {
        self.generation = generation;
        // a new map: a cleared one would keep the capacity its busiest moment needed
        self.pages = HashMap::new();
        self.bytes = 0;
    }
}

impl PageMemo {
    /// A memo of at most `budget` bytes; `None` for 0 (pages are never kept).
    pub fn with_budget(budget: u64) -> Option<Self> {
        (budget > 0).then(|| Self { budget: usize::try_from(budget).unwrap_or(usize::MAX), kept: Default::default() })
    }

    /// The page kept for `key`, if it was read at `generation`.
    pub fn get(&self, generation: u64, key: &PageKey) -> Option<Bytes> {
        let kept = self.kept.lock().expect("not poisoned");
        if kept.generation != generation {
            return None;
        }
        kept.pages.get(key).cloned()
    }

    /// Keeps `page`, read at `generation`. A newer generation sets the older pages aside
    /// first; a page read at an older one (a request that raced a change) is not kept. A full
    /// memo is emptied rather than sorted by age: it fills again with the pages asked for now.
    pub fn keep(&self, generation: u64, key: PageKey, page: Bytes) {
        let cost = key.cost(&page);
        // one page never takes more than an eighth: a few huge ones would push out the rest
        if cost > self.budget / 8 {
            return;
        }
        let mut kept = self.kept.lock().expect("not poisoned");
        if generation < kept.generation {
            return;
        }
        if generation > kept.generation {
            kept.empty(generation);
        }
        if let Some(old) = kept.pages.remove(&key) {
            kept.bytes -= key.cost(&old);
        }
        if kept.bytes + cost > self.budget {
            kept.empty(generation);
        }
        kept.bytes += cost;
        kept.pages.insert(key, page);
    }

    /// Bytes kept now (as counted against the budget).
    pub fn bytes(&self) -> usize {
        self.kept.lock().expect("not poisoned").bytes
    }
}

/// Pages answered, for `/metrics`: sent again from memory, or read from the catalog.
#[derive(Default)]
pub struct PageCounts {
    kept: AtomicU64,
    read: AtomicU64,
}

impl PageCounts {
    pub fn count(&self, from_memory: bool) {
        let counter = if from_memory { &self.kept } else { &self.read };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// (sent from memory, read from the catalog).
    pub fn totals(&self) -> (u64, u64) {
        (self.kept.load(Ordering::Relaxed), self.read.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(device: &str, offset: u64) -> PageKey {
        PageKey { user: UserId(1), device: device.into(), media_type: None, limit: 50, offset }
    }

    fn page(len: usize) -> Bytes {
        Bytes::from(vec![b'x'; len])
    }

    #[test]
    fn a_page_is_sent_again_only_at_the_generation_it_was_read_at() {
        let memo = PageMemo::with_budget(1 << 20).unwrap();
        memo.keep(3, key("cam", 0), page(10));
        assert_eq!(memo.get(3, &key("cam", 0)), Some(page(10)));
        assert_eq!(memo.get(3, &key("cam", 50)), None, "another slice");
        assert_eq!(memo.get(3, &PageKey { user: UserId(2), ..key("cam", 0) }), None, "another account");
        assert_eq!(memo.get(3, &PageKey { media_type: Some(MediaType::Image), ..key("cam", 0) }), None);
        assert_eq!(memo.get(4, &key("cam", 0)), None, "the catalog changed since");
        // a page read before a change another request has seen is not kept over the newer ones
        memo.keep(5, key("door", 0), page(10));
        memo.keep(4, key("cam", 0), page(20));
        assert_eq!(memo.get(5, &key("cam", 0)), None);
        assert_eq!(memo.get(5, &key("door", 0)), Some(page(10)));
        assert_eq!(memo.bytes(), key("door", 0).cost(&page(10)), "the older generation's pages went");
    }

    #[test]
    fn the_memo_stays_within_its_budget() {
        let budget = 8 * 1000;
        let memo = PageMemo::with_budget(budget as u64).unwrap();
        memo.keep(1, key("cam", 0), page(budget / 8 + 1));
        assert_eq!(memo.get(1, &key("cam", 0)), None, "a page over an eighth of the budget is not kept");
        // nine pages fill it (each counted 859 bytes); the tenth empties it and starts again
        for offset in 0..99 {
            memo.keep(1, key("cam", offset), page(600));
            assert!(memo.bytes() <= budget, "{} bytes kept", memo.bytes());
        }
        assert_eq!(memo.get(1, &key("cam", 98)), Some(page(600)), "the page just read is kept");
        assert!(memo.get(1, &key("cam", 90)).is_some(), "and the ones since it was last emptied");
        assert!(memo.get(1, &key("cam", 89)).is_none());
        // a full memo that keeps a page again replaces it, keeping the others
        memo.keep(1, key("cam", 98), page(600));
        assert!(memo.get(1, &key("cam", 90)).is_some(), "a page kept again does not empty the memo");
        let before = memo.bytes();
        memo.keep(1, key("cam", 98), page(100));
        let replaced = before - key("cam", 98).cost(&page(600)) + key("cam", 98).cost(&page(100));
        assert_eq!(memo.bytes(), replaced, "a page kept again replaces itself");
        assert!(PageMemo::with_budget(0).is_none());
    }
}
