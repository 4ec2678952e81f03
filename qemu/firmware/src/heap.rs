//! The global allocator: `linked_list_allocator` over the RAM after the image, behind a
//! `spin` mutex.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use linked_list_allocator::Heap;

struct SpinHeap(spin::Mutex<Heap>);

#[global_allocator]
static HEAP: SpinHeap = SpinHeap(spin::Mutex::new(Heap::empty()));
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: allocation and deallocation go through `Heap`, which hands out disjoint blocks of
// the region given to `init`, under the lock.
unsafe impl GlobalAlloc for SpinHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut heap = self.0.lock();
        let block = heap.allocate_first_fit(layout).map_or(core::ptr::null_mut(), |p| p.as_ptr());
        PEAK.fetch_max(heap.used(), Ordering::Relaxed);
        block
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(ptr) = NonNull::new(ptr) {
            // SAFETY: `GlobalAlloc`'s contract: `ptr` came from `alloc` with this layout.
            unsafe { self.0.lock().deallocate(ptr, layout) };
        }
    }
}

/// Gives the heap its memory; called once at boot.
pub fn init() {
    let (start, len) = crate::arch::heap_region();
    // SAFETY: the linker script leaves `__heap_start..__ram_end` to the heap alone; it is
    // mapped read-write, and `init` runs once, before any allocation.
    unsafe { HEAP.0.lock().init(start as *mut u8, len) };
    defmt::info!("heap: {=usize} KiB at {=usize:#x} (linked_list_allocator)", len / 1024, start);
}

/// The most bytes allocated at once so far.
pub fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}
