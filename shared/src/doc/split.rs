//! Placeholder until the struct-boundary splitter lands: refuses what it cannot cut.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error("malformed update: {0}")]
    Malformed(String),
    #[error("a single struct of {size} bytes does not fit in {max} bytes")]
    Indivisible { size: usize, max: usize },
}

pub fn split_update_v1(update: &[u8], max_piece_bytes: usize) -> Result<Vec<Vec<u8>>, SplitError> {
    if update.len() <= max_piece_bytes {
        return Ok(vec![update.to_vec()]);
    }
    Err(SplitError::Indivisible {
        size: update.len(),
        max: max_piece_bytes,
    })
}
