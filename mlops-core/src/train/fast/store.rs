//! Activation rows at a cut, kept compactly for the fast trainer: f16 (half the bytes of
//! f32) or f32, in memory while they fit a budget, spilled to an anonymous temporary file
//! beyond it and read back batch by batch, so a cut deep in the network trains on data sets
//! larger than memory.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Mutex;

use half::f16;
use half::slice::HalfFloatSliceExt;

use super::Rows;
use crate::error::{Error, Result};

/// How activation rows at the cut are stored for partial fine-tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ActivationPrecision {
    /// IEEE half precision: 2 bytes per value (relative rounding 4.9e-4), the default.
    #[default]
    F16,
    /// Single precision: 4 bytes per value, exactly what the front of the network computed.
    F32,
}

crate::names::named_enum!(ActivationPrecision, "activation_precision", {
    F16 => "f16",
    F32 => "f32",
});

impl ActivationPrecision {
    /// Bytes per stored value.
    pub fn bytes(self) -> usize {
        match self {
            ActivationPrecision::F16 => 2,
            ActivationPrecision::F32 => 4,
        }
    }
}

/// Where the rows live.
#[derive(Debug)]
enum Backing {
    F32(Vec<f32>),
    F16(Vec<f16>),
    /// Little-endian values in an anonymous temporary file (removed when closed).
    File(Mutex<File>),
}

/// Equal-length rows of activations, appended once and then read in any order.
#[derive(Debug)]
pub struct RowStore {
    row_len: usize,
    count: usize,
    precision: ActivationPrecision,
    memory_budget: u64,
    spill_dir: std::path::PathBuf,
    backing: Backing,
}

impl RowStore {
    /// An empty store for rows of `row_len` values kept at `precision`, in memory up to
    /// `memory_budget` bytes and in a temporary file in `spill_dir` beyond that.
    pub fn new(
        row_len: usize,
        precision: ActivationPrecision,
        memory_budget: u64,
        spill_dir: &Path,
    ) -> Self {
        RowStore {
            row_len,
            count: 0,
            precision,
            memory_budget,
            spill_dir: spill_dir.to_path_buf(),
            backing: match precision {
                ActivationPrecision::F16 => Backing::F16(Vec::new()),
                ActivationPrecision::F32 => Backing::F32(Vec::new()),
            },
        }
    }

    /// Rows stored.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no row is stored.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Values per row.
    pub fn row_len(&self) -> usize {
        self.row_len
    }

    /// Bytes per stored row.
    pub fn row_bytes(&self) -> usize {
        self.row_len * self.precision.bytes()
    }

    /// Whether the rows are in a temporary file rather than in memory.
    pub fn on_disk(&self) -> bool {
        matches!(self.backing, Backing::File(_))
    }

    /// Appends one row (`row_len` values), moving every row to a temporary file when the
    /// store would outgrow its memory budget.
    pub fn push(&mut self, row: &[f32]) -> Result<()> {
        if row.len() != self.row_len {
            return Err(Error::invalid(
                "rows",
                format!(
                    "a row of {} values, the store takes {}",
                    row.len(),
                    self.row_len
                ),
            ));
        }
        let grown = ((self.count + 1) * self.row_bytes()) as u64;
        if !self.on_disk() && grown > self.memory_budget {
            self.spill()?;
        }
        match &mut self.backing {
            Backing::F32(v) => v.extend_from_slice(row),
            Backing::F16(v) => v.extend(row.iter().map(|&x| f16::from_f32(x))),
            Backing::File(file) => {
                let bytes = encode(row, self.precision);
                let file = file.get_mut().map_err(|_| poisoned())?;
                file.write_all(&bytes)
                    .map_err(|e| spill_error(&self.spill_dir, e))?;
            }
        }
        self.count += 1;
        Ok(())
    }

    /// Moves the rows held in memory to a temporary file.
    fn spill(&mut self) -> Result<()> {
        std::fs::create_dir_all(&self.spill_dir).map_err(|e| spill_error(&self.spill_dir, e))?;
        let mut file =
            tempfile::tempfile_in(&self.spill_dir).map_err(|e| spill_error(&self.spill_dir, e))?;
        let bytes = match &self.backing {
            Backing::F32(v) => encode(v, ActivationPrecision::F32),
            Backing::F16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Backing::File(_) => return Ok(()),
        };
        file.write_all(&bytes)
            .map_err(|e| spill_error(&self.spill_dir, e))?;
        self.backing = Backing::File(Mutex::new(file));
        Ok(())
    }

    /// Every row as f32, row-major (for the Burn reference trainer, which needs them in
    /// memory).
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        let mut out = vec![0f32; self.count * self.row_len];
        for (i, row) in out.chunks_exact_mut(self.row_len.max(1)).enumerate() {
            self.read_row(i, row)?;
        }
        Ok(out)
    }
}

fn poisoned() -> Error {
    Error::internal("activation store", "a reader panicked")
}

fn spill_error(dir: &Path, e: std::io::Error) -> Error {
    Error::io(dir, e)
}

/// Little-endian bytes of `values` at `precision`.
fn encode(values: &[f32], precision: ActivationPrecision) -> Vec<u8> {
    match precision {
        ActivationPrecision::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ActivationPrecision::F16 => values
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect(),
    }
}

impl Rows for RowStore {
    fn count(&self) -> usize {
        self.count
    }

    fn read_row(&self, i: usize, out: &mut [f32]) -> Result<()> {
        if i >= self.count || out.len() != self.row_len {
            return Err(Error::invalid(
                "rows",
                format!(
                    "row {i} of {} ({} values asked, rows have {})",
                    self.count,
                    out.len(),
                    self.row_len
                ),
            ));
        }
        let range = i * self.row_len..(i + 1) * self.row_len;
        match &self.backing {
            Backing::F32(v) => out.copy_from_slice(&v[range]),
            Backing::F16(v) => v[range].convert_to_f32_slice(out),
            Backing::File(file) => {
                let mut bytes = vec![0u8; self.row_bytes()];
                {
                    let mut file = file.lock().map_err(|_| poisoned())?;
                    file.seek(SeekFrom::Start((i * self.row_bytes()) as u64))
                        .and_then(|_| file.read_exact(&mut bytes))
                        .map_err(|e| spill_error(&self.spill_dir, e))?;
                }
                match self.precision {
                    ActivationPrecision::F32 => {
                        for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                            *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                        }
                    }
                    ActivationPrecision::F16 => {
                        for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                            *o = f16::from_le_bytes([b[0], b[1]]).to_f32();
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, len: usize) -> Vec<Vec<f32>> {
        (0..n)
            .map(|r| {
                (0..len)
                    .map(|i| (r * len + i) as f32 * 0.37 - 5.0)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn rows_read_back_in_memory_and_after_spilling_to_disk() {
        let dir = tempfile::tempdir().unwrap();
        for precision in [ActivationPrecision::F32, ActivationPrecision::F16] {
            for budget in [u64::MAX, 3 * 8 * precision.bytes() as u64] {
                let mut store = RowStore::new(8, precision, budget, dir.path());
                let data = rows(10, 8);
                for r in &data {
                    store.push(r).unwrap();
                }
                assert_eq!(store.on_disk(), budget != u64::MAX);
                assert_eq!(store.len(), 10);
                let mut out = vec![0f32; 8];
                for i in [7, 0, 9, 3] {
                    store.read_row(i, &mut out).unwrap();
                    for (a, b) in out.iter().zip(&data[i]) {
                        let tolerance = match precision {
                            ActivationPrecision::F32 => 0.0,
                            ActivationPrecision::F16 => b.abs() * 4.9e-4 + 1e-7,
                        };
                        assert!((a - b).abs() <= tolerance, "{precision:?} {a} vs {b}");
                    }
                }
                assert!(store.read_row(10, &mut out).is_err());
                assert!(store.push(&[1.0]).is_err());
            }
        }
    }
}
