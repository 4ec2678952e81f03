//! Embedder-registered helper functions, called by `call imm` and `callx`.

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
