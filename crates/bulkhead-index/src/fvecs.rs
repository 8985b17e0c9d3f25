//! Readers for the `fvecs` / `ivecs` formats of the ANN benchmark datasets (each row a
//! little-endian `i32` dimension followed by that many `f32` or `i32` values), shared by the tests
//! and the benchmark harness.

use std::path::Path;

use crate::IndexError;

/// Row-major rows of equal length read from an `fvecs` or `ivecs` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows<T> {
    dim: usize,
    data: Vec<T>,
}

/// Vectors read from an `fvecs` file.
pub type Fvecs = Rows<f32>;

/// Non-negative ids read from an `ivecs` file (ground-truth neighbour lists).
pub type Ivecs = Rows<u32>;

impl<T> Rows<T> {
    /// Returns the length of every row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Returns the number of rows.
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Returns whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Returns row `index`, or `None` if out of range.
    pub fn row(&self, index: usize) -> Option<&[T]> {
        let start = index.checked_mul(self.dim)?;
        self.data.get(start..start.checked_add(self.dim)?)
    }

    /// Iterates over the rows in order.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = &[T]> + '_ {
        self.data.chunks_exact(self.dim.max(1))
    }
}

/// Reads up to `max_rows` rows (all if `None`) of an `fvecs` file.
///
/// # Errors
///
/// [`IndexError::Io`] if the file cannot be read; [`IndexError::MalformedVectorFile`] for a
/// truncated row, a non-positive or changing dimension.
pub fn read_fvecs(path: &Path, max_rows: Option<usize>) -> Result<Fvecs, IndexError> {
    let (dim, words) = read_rows(&std::fs::read(path)?, max_rows)?;
    Ok(Rows { dim, data: words.into_iter().map(f32::from_le_bytes).collect() })
}

/// Reads up to `max_rows` rows (all if `None`) of an `ivecs` file.
///
/// # Errors
///
/// As [`read_fvecs`], and [`IndexError::MalformedVectorFile`] for a negative id.
pub fn read_ivecs(path: &Path, max_rows: Option<usize>) -> Result<Ivecs, IndexError> {
    let (dim, words) = read_rows(&std::fs::read(path)?, max_rows)?;
    let data = words
        .into_iter()
        .map(|word| u32::try_from(i32::from_le_bytes(word)))
        .collect::<Result<Vec<u32>, _>>()
        .map_err(|_| IndexError::MalformedVectorFile { reason: "negative id" })?;
    Ok(Rows { dim, data })
}

/// Splits `bytes` into rows of `[dim: i32][dim × 4 bytes]`, returning the dimension and the raw
/// 4-byte words of up to `max_rows` rows.
fn read_rows(bytes: &[u8], max_rows: Option<usize>) -> Result<(usize, Vec<[u8; 4]>), IndexError> {
    let malformed = |reason| IndexError::MalformedVectorFile { reason };
    let mut rest = bytes;
    let mut dim = None;
    let mut words = Vec::new();
    let mut rows = 0usize;
    while !rest.is_empty() && max_rows.is_none_or(|max| rows < max) {
        let (header, tail) = rest.split_first_chunk::<4>().ok_or(malformed("truncated row header"))?;
        let row_dim = usize::try_from(i32::from_le_bytes(*header))
            .ok()
            .filter(|&d| d > 0)
            .ok_or(malformed("non-positive dimension"))?;
        if *dim.get_or_insert(row_dim) != row_dim {
            return Err(malformed("rows of different dimensions"));
        }
        let row_len = row_dim * 4;
        if tail.len() < row_len {
            return Err(malformed("truncated row"));
        }
        let (row, tail) = tail.split_at(row_len);
        words.extend(row.chunks_exact(4).map(|b| [b[0], b[1], b[2], b[3]]));
        rest = tail;
        rows += 1;
    }
    Ok((dim.unwrap_or(0), words))
}
