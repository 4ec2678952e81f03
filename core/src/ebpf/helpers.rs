//! Embedder-registered helper functions, called by `call imm` and `callx`.

use super::error::LoadError as Error;

/// A helper: five arguments (r1..r5) in, r0 out.
pub type HelperFn = fn(u64, u64, u64, u64, u64) -> u64;

/// One registered helper; the id is the embedder's choice.
#[derive(Clone, Copy)]
pub struct Helper {
    pub id: u32,
    pub func: HelperFn,
}

impl core::fmt::Debug for Helper {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Helper").field("id", &self.id).finish_non_exhaustive()
    }
}

/// A helper table borrowed from the embedder (a static array works with no allocator).
#[derive(Clone, Copy, Debug, Default)]
pub struct Helpers<'h> {
    table: &'h [Helper],
}

impl<'h> Helpers<'h> {
    pub const fn new(table: &'h [Helper]) -> Helpers<'h> {
        Helpers { table }
    }

    pub const fn empty() -> Helpers<'static> {
        Helpers { table: &[] }
    }

    /// Looks a helper up by id (ids are 32-bit; `callx` passes a 64-bit register).
    pub fn get(&self, id: u64) -> Option<HelperFn> {
        self.table.iter().find(|h| h.id as u64 == id).map(|h| h.func)
    }

    pub fn contains(&self, id: i32) -> bool {
        self.get(id as u32 as u64).is_some()
    }
}

/// A fixed-capacity helper registry for embedders without an allocator: helpers are
/// registered one by one (ids are checked for duplicates), then lent out as [`Helpers`].
#[derive(Debug, Default)]
pub struct HelperRegistry<const N: usize> {
    helpers: heapless::Vec<Helper, N>,
}

impl<const N: usize> HelperRegistry<N> {
    pub const fn new() -> HelperRegistry<N> {
        HelperRegistry { helpers: heapless::Vec::new() }
    }

    /// Registers `func` under `id`.
    pub fn register(&mut self, id: u32, func: HelperFn) -> Result<(), Error> {
        if self.helpers.iter().any(|h| h.id == id) {
            return Err(Error::DuplicateHelper { id });
        }
        self.helpers.push(Helper { id, func }).map_err(|_| Error::HelperTableFull { capacity: N as u32 })
    }

    /// The registered helpers, for [`crate::ebpf::Vm::new`].
    pub fn helpers(&self) -> Helpers<'_> {
        Helpers::new(&self.helpers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_rejects_duplicates_and_overflow() {
        let mut registry = HelperRegistry::<2>::new();
        registry.register(1, |a, _, _, _, _| a).unwrap();
        assert_eq!(registry.register(1, |_, b, _, _, _| b), Err(Error::DuplicateHelper { id: 1 }));
        registry.register(7, |_, b, _, _, _| b).unwrap();
        assert_eq!(registry.register(8, |a, _, _, _, _| a), Err(Error::HelperTableFull { capacity: 2 }));
        let helpers = registry.helpers();
        assert_eq!(helpers.get(7).map(|f| f(1, 2, 3, 4, 5)), Some(2));
        assert!(helpers.contains(1) && !helpers.contains(8));
    }
}
