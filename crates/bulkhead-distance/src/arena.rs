//! `VectorArena`: contiguous, 64-byte-aligned storage for `n` vectors of one dimension.
//!
//! Layout (one allocation, `align = 64`, `stride = dim` rounded up to a multiple of 16 floats):
//!
//! ```text
//!  byte 0                       byte 4·dim         byte 4·stride (multiple of 64)
//!  +----------------------------+-------------------+
//!  | row 0: dim × f32           | zero padding      |
//!  +----------------------------+-------------------+
//!  | row 1: dim × f32           | zero padding      |   every row starts on a 64-byte boundary
//!  +----------------------------+-------------------+
//!  | ...                                            |
//!  +------------------------------------------------+
//!  | rows len .. capacity: uninitialised, never read |
//!  +------------------------------------------------+
//! ```
//!
//! Padding is written as zeros but never read by the distance functions, which always work over
//! exactly `dim` elements (the query is not padded). The arena also keeps each row's squared norm,
//! so batch cosine costs one dot product per row.

use std::alloc::{self, Layout};
use std::fmt;
use std::ptr::{self, NonNull};

use crate::{DistanceError, Kernels};

/// Row alignment in bytes: one cache line and one AVX-512 register.
pub const ROW_ALIGN: usize = 64;
/// Row alignment in `f32`s.
const ALIGN_FLOATS: usize = ROW_ALIGN / size_of::<f32>();
/// The largest number of rows, so that every row id fits in a `u32`.
const MAX_ROWS: usize = u32::MAX as usize;

/// Contiguous storage for vectors of one dimension, each row 64-byte aligned and zero-padded.
///
/// Rows are appended with [`push`](Self::push), which returns the row's id, and read with
/// [`get`](Self::get). Every stored element is finite and every row's squared norm is finite;
/// `push` rejects anything else, so distances computed against an arena never see NaN from the
/// stored side.
pub struct VectorArena {
    /// Base of the allocation; dangling (and never dereferenced) while `capacity == 0`.
    ptr: NonNull<f32>,
    /// Floats per vector.
    dim: usize,
    /// Floats per row, `dim` rounded up to a multiple of 16.
    stride: usize,
    /// Rows initialised.
    len: usize,
    /// Rows allocated.
    capacity: usize,
    /// `v·v` for each stored row, in row order.
    squared_norms: Vec<f32>,
}

// SAFETY: `VectorArena` owns its allocation exclusively (like a `Vec<f32>`), has no interior
// mutability, and only hands out `&[f32]` through `&self`, so moving it to another thread is sound.
unsafe impl Send for VectorArena {}
// SAFETY: shared references only permit reads of initialised, immutable rows, so sharing is sound.
unsafe impl Sync for VectorArena {}

impl VectorArena {
    /// Creates an empty arena for vectors of dimension `dim`.
    ///
    /// # Errors
    ///
    /// [`DistanceError::ZeroDimension`] if `dim == 0`; [`DistanceError::CapacityOverflow`] if one
    /// padded row would not fit in memory.
    pub fn new(dim: usize) -> Result<Self, DistanceError> {
        Self::with_capacity(dim, 0)
    }

    /// Creates an empty arena for vectors of dimension `dim` with room for `rows` rows.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new), and [`DistanceError::CapacityOverflow`] if `rows` rows would not fit.
    pub fn with_capacity(dim: usize, rows: usize) -> Result<Self, DistanceError> {
        if dim == 0 {
            return Err(DistanceError::ZeroDimension);
        }
        let stride = dim.checked_next_multiple_of(ALIGN_FLOATS).ok_or(DistanceError::CapacityOverflow)?;
        let mut arena =
            Self { ptr: NonNull::dangling(), dim, stride, len: 0, capacity: 0, squared_norms: Vec::new() };
        // Check that one row fits even when no rows are requested, so `push` can rely on it.
        arena.layout_for(1)?;
        arena.reserve(rows)?;
        Ok(arena)
    }

    /// Returns the dimension of every vector in the arena.
    #[inline]
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Returns the number of floats between the starts of consecutive rows (`dim` rounded up to
    /// 16).
    #[inline]
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Returns the number of stored vectors.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Returns whether the arena holds no vectors.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns the number of rows the arena can hold without reallocating.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Makes room for at least `additional` more rows.
    ///
    /// # Errors
    ///
    /// [`DistanceError::CapacityOverflow`] if the arena would exceed `u32::MAX` rows or
    /// `isize::MAX` bytes.
    pub fn reserve(&mut self, additional: usize) -> Result<(), DistanceError> {
        let needed = self.len.checked_add(additional).ok_or(DistanceError::CapacityOverflow)?;
        if needed <= self.capacity {
            return Ok(());
        }
        if needed > MAX_ROWS {
            return Err(DistanceError::CapacityOverflow);
        }
        let new_capacity = needed.max(self.capacity.saturating_mul(2)).clamp(4, MAX_ROWS);
        let new_layout = self.layout_for(new_capacity)?;
        let new_ptr = if self.capacity == 0 {
            // SAFETY: `new_layout` has a non-zero size because `new_capacity >= 1` and `stride >=
            // 16`.
            unsafe { alloc::alloc(new_layout) }
        } else {
            let old_layout = self.layout_for(self.capacity)?;
            // SAFETY: `self.ptr` was allocated by the global allocator with `old_layout` (the
            // layout for the current capacity), the new size is non-zero and was checked by
            // `Layout::from_size_align` not to overflow `isize`. `realloc` keeps `old_layout`'s
            // alignment of 64.
            unsafe { alloc::realloc(self.ptr.as_ptr().cast::<u8>(), old_layout, new_layout.size()) }
        };
        let Some(new_ptr) = NonNull::new(new_ptr.cast::<f32>()) else {
            alloc::handle_alloc_error(new_layout);
        };
        self.ptr = new_ptr;
        self.capacity = new_capacity;
        self.squared_norms.reserve(new_capacity - self.squared_norms.len());
        Ok(())
    }

    /// Appends a vector and returns its row id.
    ///
    /// # Errors
    ///
    /// [`DistanceError::DimensionMismatch`] if `vector.len() != self.dim()`;
    /// [`DistanceError::NonFinite`] if an element is NaN or infinite;
    /// [`DistanceError::NormOverflow`] if `vector·vector` overflows `f32`;
    /// [`DistanceError::CapacityOverflow`] if the arena already holds `u32::MAX` rows.
    pub fn push(&mut self, vector: &[f32]) -> Result<u32, DistanceError> {
        if vector.len() != self.dim {
            return Err(DistanceError::DimensionMismatch { left: vector.len(), right: self.dim });
        }
        if let Some(index) = vector.iter().position(|x| !x.is_finite()) {
            return Err(DistanceError::NonFinite { index });
        }
        let squared_norm = Kernels::active().dot_unchecked(vector, vector);
        if !squared_norm.is_finite() {
            return Err(DistanceError::NormOverflow);
        }
        let id = u32::try_from(self.len).map_err(|_| DistanceError::CapacityOverflow)?;
        self.reserve(1)?;
        // SAFETY: `reserve(1)` guarantees `len < capacity`, so the row `len` lies inside the
        // allocation: it spans floats `len·stride .. (len + 1)·stride`, and the layout covers
        // `capacity·stride` floats. The source slice cannot overlap the arena's uninitialised tail,
        // which no safe reference can point into.
        unsafe {
            let row = self.ptr.as_ptr().add(self.len * self.stride);
            ptr::copy_nonoverlapping(vector.as_ptr(), row, self.dim);
            ptr::write_bytes(row.add(self.dim), 0, self.stride - self.dim);
        }
        self.len += 1;
        self.squared_norms.push(squared_norm);
        Ok(id)
    }

    /// Returns the vector with row id `id` (exactly `dim` floats, without padding), or `None` if
    /// `id` is not below [`len`](Self::len).
    #[inline]
    pub fn get(&self, id: u32) -> Option<&[f32]> {
        let index = usize::try_from(id).ok()?;
        (index < self.len).then(|| self.row(index))
    }

    /// Returns the squared norm `v·v` of row `id`, computed when it was pushed, or `None` if out of
    /// range.
    #[inline]
    pub fn squared_norm(&self, id: u32) -> Option<f32> {
        self.squared_norms.get(usize::try_from(id).ok()?).copied()
    }

    /// Iterates over the stored vectors in row order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[f32]> + '_ {
        (0..self.len).map(|index| self.row(index))
    }

    /// Returns every initialised row including padding: `len · stride` floats starting at the
    /// aligned base.
    #[inline]
    pub fn as_padded_slice(&self) -> &[f32] {
        // SAFETY: the first `len` rows (`len · stride` floats) are initialised by `push` (data and
        // zero padding), the pointer is non-null and aligned (dangling only when `len == 0`, which
        // gives an empty slice), and `&self` prevents mutation for the returned lifetime.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len * self.stride) }
    }

    /// Returns the `dim` floats of row `index`; panics if `index >= len` (callers check first).
    #[inline]
    pub(crate) fn row(&self, index: usize) -> &[f32] {
        let start = index * self.stride;
        &self.as_padded_slice()[start..start + self.dim]
    }

    /// Returns the stored squared norms, in row order.
    #[inline]
    pub(crate) fn squared_norms(&self) -> &[f32] {
        &self.squared_norms
    }

    /// Returns the allocation layout for `rows` rows.
    fn layout_for(&self, rows: usize) -> Result<Layout, DistanceError> {
        let bytes = rows
            .checked_mul(self.stride)
            .and_then(|floats| floats.checked_mul(size_of::<f32>()))
            .ok_or(DistanceError::CapacityOverflow)?;
        Layout::from_size_align(bytes, ROW_ALIGN).map_err(|_| DistanceError::CapacityOverflow)
    }
}

impl Drop for VectorArena {
    fn drop(&mut self) {
        if self.capacity == 0 {
            return;
        }
        // The layout was valid when this capacity was allocated, so recomputing it cannot fail.
        if let Ok(layout) = self.layout_for(self.capacity) {
            // SAFETY: `self.ptr` was allocated by the global allocator with exactly this layout and
            // is not used again after `drop`.
            unsafe { alloc::dealloc(self.ptr.as_ptr().cast::<u8>(), layout) };
        }
    }
}

impl Clone for VectorArena {
    fn clone(&self) -> Self {
        let mut copy = Self {
            ptr: NonNull::dangling(),
            dim: self.dim,
            stride: self.stride,
            len: 0,
            capacity: 0,
            squared_norms: Vec::new(),
        };
        // `self` already holds `len` rows, so the same number of rows fits again.
        if copy.reserve(self.len).is_err() {
            alloc::handle_alloc_error(Layout::new::<f32>());
        }
        let padded = self.as_padded_slice();
        // SAFETY: `copy` has capacity for `self.len` rows, i.e. `padded.len()` floats, and is a
        // fresh allocation that cannot overlap `self`'s.
        unsafe { ptr::copy_nonoverlapping(padded.as_ptr(), copy.ptr.as_ptr(), padded.len()) };
        copy.len = self.len;
        copy.squared_norms.clone_from(&self.squared_norms);
        copy
    }
}

impl fmt::Debug for VectorArena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VectorArena")
            .field("dim", &self.dim)
            .field("stride", &self.stride)
            .field("len", &self.len)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}
