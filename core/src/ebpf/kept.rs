//! Run state a program handle keeps between runs, so that a run writes only what differs
//! from the last one: the region table (2 KiB, most of it entries no run uses) and the
//! interpreters' local-call frames, which a fresh run would zero before its first
//! instruction.
//!
//! With `alloc` the state goes on the heap on a handle's first run (handles stay small: they
//! are moved through `Result`s when made, and a 2 KiB move costs as much as a short run).
//! Without `alloc` a handle keeps nothing and every run starts from fresh state, unless the
//! caller keeps it (see [`super::jit::RunContext`]).

/// A handle's kept run state, behind a try-lock: a run that finds it taken (a helper running
/// the same program again, or another thread) works on fresh state of its own.
pub(crate) struct Kept<T> {
    #[cfg(feature = "alloc")]
    slot: spin::Mutex<Option<alloc::boxed::Box<T>>>,
    #[cfg(not(feature = "alloc"))]
    slot: core::marker::PhantomData<T>,
}

impl<T> Kept<T> {
    pub(crate) const fn new() -> Kept<T> {
        #[cfg(feature = "alloc")]
        return Kept { slot: spin::Mutex::new(None) };
        #[cfg(not(feature = "alloc"))]
        return Kept { slot: core::marker::PhantomData };
    }

    /// Runs `run` on the kept state (made by `make` on first use), or on fresh state from
    /// `make` when there is none to take.
    #[inline(always)]
    pub(crate) fn with<R>(&self, make: impl Fn() -> T, run: impl FnOnce(&mut T) -> R) -> R {
        let mut fresh;
        #[cfg(feature = "alloc")]
        let mut guard = self.slot.try_lock();
        #[cfg(feature = "alloc")]
        let state: &mut T = match guard.as_deref_mut() {
            Some(slot) => slot.get_or_insert_with(|| alloc::boxed::Box::new(make())),
            None => {
                fresh = make();
                &mut fresh
            }
        };
        #[cfg(not(feature = "alloc"))]
        let state: &mut T = {
            fresh = make();
            &mut fresh
        };
        run(state)
    }
}

impl<T> core::fmt::Debug for Kept<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Kept").finish_non_exhaustive()
    }
}
