//! Bitmaps over slots, in caller scratch (validation and provenance keep one bit per slot).

#[inline(always)]
pub(crate) fn bit(words: &[u64], i: usize) -> bool {
    words.get(i / 64).is_some_and(|w| (w >> (i % 64)) & 1 != 0)
}

#[inline(always)]
pub(crate) fn set_bit(words: &mut [u64], i: usize) {
    if let Some(w) = words.get_mut(i / 64) {
        *w |= 1 << (i % 64);
    }
}

/// Sets bits `from..to`.
pub(crate) fn set_bits(words: &mut [u64], from: usize, to: usize) {
    let mut i = from;
    while i < to {
        let Some(word) = words.get_mut(i / 64) else { return };
        let low = i % 64;
        let high = (to - i + low).min(64);
        *word |= (u64::MAX << low) & (u64::MAX >> (64 - high));
        i += high - low;
    }
}

/// Clears bit `i`; whether it was set.
#[inline(always)]
pub(crate) fn take_bit(words: &mut [u64], i: usize) -> bool {
    let Some(w) = words.get_mut(i / 64) else { return false };
    let mask = 1 << (i % 64);
    let was_set = *w & mask != 0;
    *w &= !mask;
    was_set
}

#[inline(always)]
pub(crate) fn clear_bit(words: &mut [u64], i: usize) {
    if let Some(w) = words.get_mut(i / 64) {
        *w &= !(1 << (i % 64));
    }
}

/// The lowest clear bit at or after `from` (`words.len() * 64` if none).
pub(crate) fn next_clear_bit(words: &[u64], from: usize) -> usize {
    let mut index = from / 64;
    let Some(&first) = words.get(index) else { return from };
    let mut word = !first & (u64::MAX << (from % 64));
    loop {
        if word != 0 {
            return index * 64 + word.trailing_zeros() as usize;
        }
        index += 1;
        match words.get(index) {
            Some(w) => word = !w,
            None => return index * 64,
        }
    }
}

/// The lowest set bit at or after `from`.
pub(crate) fn next_set_bit(words: &[u64], from: usize) -> Option<usize> {
    let mut index = from / 64;
    let mut word = words.get(index)? & (u64::MAX << (from % 64));
    loop {
        if word != 0 {
            return Some(index * 64 + word.trailing_zeros() as usize);
        }
        index += 1;
        word = *words.get(index)?;
    }
}
