//! Where the core writes its answers: the caller's arrays, whether their memory is
//! initialised (`&mut [T]`, from Rust) or not (`&mut [MaybeUninit<T>]`, from C, whose
//! arrays may hold any bytes). The core only ever writes entries, front to back, and never
//! reads one back, so both take the same code.

use core::mem::MaybeUninit;

/// An output array.
pub(crate) trait Slots<T> {
    /// How many entries fit.
    fn capacity(&self) -> usize;

    /// Writes entry `index`, which must be below [`Slots::capacity`].
    fn put(&mut self, index: usize, value: T);

    /// Writes entry `index` if it fits, and says whether it did.
    #[inline(always)]
    fn try_put(&mut self, index: usize, value: T) -> bool {
        let fits = index < self.capacity();
        if fits {
            self.put(index, value);
        }
        fits
    }
}

impl<T> Slots<T> for [T] {
    #[inline(always)]
    fn capacity(&self) -> usize {
        self.len()
    }

    #[inline(always)]
    fn put(&mut self, index: usize, value: T) {
        self[index] = value;
    }
}

impl<T> Slots<T> for [MaybeUninit<T>] {
    #[inline(always)]
    fn capacity(&self) -> usize {
        self.len()
    }

    #[inline(always)]
    fn put(&mut self, index: usize, value: T) {
        self[index].write(value);
    }
}
