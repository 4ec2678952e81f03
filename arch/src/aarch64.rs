//! (in progress)
use crate::{PatchError, RelocKind};
pub fn patch(_kind: RelocKind, _code: &mut [u8], _offset: usize, _value: u64, _place: u64) -> Result<(), PatchError> {
    Err(PatchError::WrongIsa)
}
