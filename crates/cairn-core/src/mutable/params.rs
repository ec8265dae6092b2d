//! Segment geometry of a mutable file (`publish.py::setup_encoding_parameters`,
//! `layout.py::MDMFSlotWriteProxy.__init__`, `retrieve.py::_setup_encoding_parameters`).

use thiserror::Error;

use super::layout::MAX_MUTABLE_SHARE_SIZE;
use super::{MutableFormat, DEFAULT_MAX_SEGMENT_SIZE, SALT_LEN};

/// Encoding parameters that no Tahoe writer produces (or that would overflow).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParamsError {
    #[error("need 1 <= k <= N <= 255, got k={k}, N={n}")]
    BadKN { k: u8, n: u8 },
    #[error("segment size {segment_size} is not a multiple of k={k}")]
    SegmentSizeNotMultipleOfK { segment_size: u64, k: u8 },
    #[error("SDMF segment size {segment_size} should be {expected} for {data_length} bytes")]
    BadSdmfSegmentSize {
        segment_size: u64,
        data_length: u64,
        expected: u64,
    },
    #[error("segment size 0 with {data_length} bytes of data")]
    ZeroSegmentSize { data_length: u64 },
    #[error("file of {data_length} bytes is too large")]
    TooLarge { data_length: u64 },
}

/// Sizes of segments and blocks of one version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentParams {
    pub format: MutableFormat,
    pub k: u8,
    pub n: u8,
    pub segment_size: u64,
    pub data_length: u64,
    /// 0 for an empty file.
    pub num_segments: u64,
    /// `segment_size / k`.
    pub block_size: u64,
    /// Plaintext bytes in the last segment (`segment_size` when it is full).
    pub tail_data_size: u64,
    /// `ceil(tail_data_size / k)`.
    pub tail_block_size: u64,
}

fn next_multiple(x: u64, k: u64) -> Option<u64> {
    x.checked_add(k - 1).map(|v| v / k * k)
}

impl SegmentParams {
    /// What Tahoe's publisher picks for `data_length` bytes: SDMF one segment of
    /// `next_multiple(len, k)`; MDMF 128 KiB rounded up to a multiple of `k`.
    pub fn for_publish(
        format: MutableFormat,
        k: u8,
        n: u8,
        data_length: u64,
    ) -> Result<Self, ParamsError> {
        Self::for_publish_with_max(format, k, n, data_length, DEFAULT_MAX_SEGMENT_SIZE)
    }

    /// [`Self::for_publish`] with another MDMF maximum segment size (Tahoe's tests patch
    /// `DEFAULT_MUTABLE_MAX_SEGMENT_SIZE`); must be at least 1.
    pub fn for_publish_with_max(
        format: MutableFormat,
        k: u8,
        n: u8,
        data_length: u64,
        max_segment_size: u64,
    ) -> Result<Self, ParamsError> {
        let kk = u64::from(k.max(1));
        let segment_size = match format {
            MutableFormat::Sdmf => next_multiple(data_length, kk),
            MutableFormat::Mdmf => next_multiple(max_segment_size.max(1), kk),
        }
        .ok_or(ParamsError::TooLarge { data_length })?;
        Self::from_header(format, k, n, segment_size, data_length)
    }

    /// Check header values and derive the geometry (never overflows).
    pub fn from_header(
        format: MutableFormat,
        k: u8,
        n: u8,
        segment_size: u64,
        data_length: u64,
    ) -> Result<Self, ParamsError> {
        if k == 0 || k > n {
            return Err(ParamsError::BadKN { k, n });
        }
        let kk = u64::from(k);
        if !segment_size.is_multiple_of(kk) {
            return Err(ParamsError::SegmentSizeNotMultipleOfK { segment_size, k });
        }
        if format == MutableFormat::Sdmf {
            let expected =
                next_multiple(data_length, kk).ok_or(ParamsError::TooLarge { data_length })?;
            if segment_size != expected {
                return Err(ParamsError::BadSdmfSegmentSize {
                    segment_size,
                    data_length,
                    expected,
                });
            }
        }
        let (num_segments, tail_data_size) = if data_length == 0 {
            (0, segment_size)
        } else if segment_size == 0 {
            return Err(ParamsError::ZeroSegmentSize { data_length });
        } else {
            let tail = data_length % segment_size;
            (
                data_length.div_ceil(segment_size),
                if tail == 0 { segment_size } else { tail },
            )
        };
        let block_size = segment_size / kk;
        let tail_block_size = tail_data_size.div_ceil(kk);
        let p = SegmentParams {
            format,
            k,
            n,
            segment_size,
            data_length,
            num_segments,
            block_size,
            tail_data_size,
            tail_block_size,
        };
        // Every block of one share, with MDMF salts, must fit in a share.
        let per_share = block_size
            .checked_add(SALT_LEN as u64)
            .and_then(|b| b.checked_mul(num_segments))
            .filter(|&s| s <= MAX_MUTABLE_SHARE_SIZE);
        if per_share.is_none() {
            return Err(ParamsError::TooLarge { data_length });
        }
        Ok(p)
    }

    /// Length of this share's block of segment `seg`.
    pub fn block_len(&self, seg: u64) -> u64 {
        if seg + 1 == self.num_segments {
            self.tail_block_size
        } else {
            self.block_size
        }
    }

    /// Plaintext bytes in segment `seg`.
    pub fn segment_data_len(&self, seg: u64) -> u64 {
        if seg + 1 == self.num_segments {
            self.tail_data_size
        } else {
            self.segment_size
        }
    }

    /// Bytes of MDMF share data (salt || block per segment) in one share.
    pub fn mdmf_share_data_size(&self) -> u64 {
        if self.num_segments == 0 {
            return 0;
        }
        (self.block_size + SALT_LEN as u64) * (self.num_segments - 1)
            + self.tail_block_size
            + SALT_LEN as u64
    }

    /// How many salts an encoder needs: SDMF always one (an empty file still has an IV);
    /// MDMF one per segment.
    pub fn num_salts(&self) -> usize {
        match self.format {
            MutableFormat::Sdmf => 1,
            MutableFormat::Mdmf => self.num_segments as usize,
        }
    }
}
