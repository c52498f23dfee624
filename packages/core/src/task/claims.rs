//! Which coroutines belong to a live task.
//!
//! Two tasks stepping one coroutine on two threads at once crashes free-threaded CPython
//! (generators are not safe to resume concurrently). Spawning the same coroutine twice is an
//! easy mistake, so every task claims its coroutine and a second claim raises instead.
//! Process-wide, since a coroutine could be handed to two runtimes.
//!
//! A claim is one bit per possible object address, set and cleared with a single atomic
//! instruction: objects are 16-byte aligned, so each bit stands for 16 bytes of address
//! space. The bits live in one bitmap per GiB of address space, allocated the first time a
//! coroutine in that GiB is claimed and never freed. Each reserves 8 MiB of address space, but
//! the kernel backs only the pages that are touched: one 4 KiB page per 512 KiB of heap that
//! held a claimed coroutine, so at most 0.8% of that heap. Coroutines allocated one after
//! another share cache lines of the bitmap, so a million live claims cost no more to add and
//! remove than a few.

use std::alloc::{alloc_zeroed, Layout};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

/// Addresses below 2^47: the x86-64 and AArch64 user address space unless a program maps
/// memory above it on purpose (then `claim` falls back to a locked set).
const ADDRESS_BITS: u32 = 47;
const REGION_BITS: u32 = 30;
const ALIGN_BITS: u32 = 4;
const REGIONS: usize = 1 << (ADDRESS_BITS - REGION_BITS);
const WORDS_PER_REGION: usize = 1 << (REGION_BITS - ALIGN_BITS - 6);

#[allow(clippy::declare_interior_mutable_const)]
const NO_REGION: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());
static REGION_TABLE: [AtomicPtr<AtomicU64>; REGIONS] = [NO_REGION; REGIONS];

/// The bitmap covering `region`, allocating it if this is its first claim.
fn bitmap(region: usize) -> Option<&'static [AtomicU64]> {
    let slot = &REGION_TABLE[region];
    let mut words = slot.load(Ordering::Acquire);
    if words.is_null() {
        let layout = Layout::array::<AtomicU64>(WORDS_PER_REGION).ok()?;
        // SAFETY: a non-zero size; all-zero bytes are valid AtomicU64s (unclaimed).
        let fresh = unsafe { alloc_zeroed(layout) }.cast::<AtomicU64>();
        if fresh.is_null() {
            return None;
        }
        words = match slot.compare_exchange(
            std::ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => fresh,
            Err(theirs) => {
                // Another thread installed the region first.
                // SAFETY: allocated above with this layout and never shared.
                unsafe { std::alloc::dealloc(fresh.cast(), layout) };
                theirs
            }
        };
    }
    // SAFETY: installed bitmaps hold WORDS_PER_REGION words and are never freed.
    Some(unsafe { std::slice::from_raw_parts(words, WORDS_PER_REGION) })
}

/// The word and bit that stand for `addr`, if it lies where bitmaps can cover it.
fn locate(addr: usize) -> Option<(&'static AtomicU64, u64)> {
    if addr >> ADDRESS_BITS != 0 {
        return None;
    }
    let words = bitmap(addr >> REGION_BITS)?;
    let index = (addr & ((1 << REGION_BITS) - 1)) >> ALIGN_BITS;
    Some((&words[index / 64], 1 << (index % 64)))
}

/// Claims the object at `addr`; false if a live task already owns it.
pub fn claim(addr: usize) -> bool {
    match locate(addr) {
        Some((word, bit)) => word.fetch_or(bit, Ordering::AcqRel) & bit == 0,
        None => fallback::claim(addr),
    }
}

pub fn release(addr: usize) {
    match locate(addr) {
        Some((word, bit)) => {
            word.fetch_and(!bit, Ordering::AcqRel);
        }
        None => fallback::release(addr),
    }
}

/// Claims of objects outside the bitmaps' range (or when a bitmap could not be allocated).
mod fallback {
    use std::collections::HashSet;
    use std::sync::Mutex;

    static CLAIMED: Mutex<Option<HashSet<usize>>> = Mutex::new(None);

    fn claimed() -> std::sync::MutexGuard<'static, Option<HashSet<usize>>> {
        CLAIMED.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn claim(addr: usize) -> bool {
        claimed().get_or_insert_with(HashSet::new).insert(addr)
    }

    pub fn release(addr: usize) {
        if let Some(set) = claimed().as_mut() {
            set.remove(&addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_fails_until_released() {
        let addr = Box::into_raw(Box::new(0u128)) as usize;
        assert!(claim(addr));
        assert!(!claim(addr));
        assert!(claim(addr + 16), "the neighbouring object is separate");
        release(addr);
        assert!(claim(addr));
        release(addr);
        release(addr + 16);
        // SAFETY: allocated above.
        drop(unsafe { Box::from_raw(addr as *mut u128) });
    }

    #[test]
    fn addresses_beyond_the_bitmaps_use_the_fallback() {
        let addr = (1usize << ADDRESS_BITS) + 32;
        assert!(claim(addr));
        assert!(!claim(addr));
        release(addr);
        assert!(claim(addr));
        release(addr);
    }
}
