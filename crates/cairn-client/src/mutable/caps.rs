//! From caps to keys and back: the writer's or reader's keys a cap holds, and the caps of
//! a published file.

use cairn_core::cap::{Cap, MdmfWriteCap, SdmfWriteCap};
use cairn_core::mutable::keys::{ReaderKeys, WriterKeys};

use super::{MutableError, MutableFormat};

pub(super) fn write_keys(cap: &Cap) -> Result<(WriterKeys, MutableFormat), MutableError> {
    let (wk, fp, format) = match cap {
        Cap::SdmfWrite(c) => (*c.writekey().as_bytes(), *c.fingerprint(), c.format()),
        Cap::MdmfWrite(c) => (*c.writekey().as_bytes(), *c.fingerprint(), c.format()),
        Cap::SdmfRead(_) | Cap::MdmfRead(_) => return Err(MutableError::NotWriteable),
        other => return Err(MutableError::BadCap(other.kind_name().to_string())),
    };
    Ok((WriterKeys::new(wk, fp), format))
}

pub(super) fn read_keys(cap: &Cap) -> Result<ReaderKeys, MutableError> {
    let (rk, fp) = match cap {
        Cap::SdmfWrite(c) => (*c.readkey().as_bytes(), *c.fingerprint()),
        Cap::MdmfWrite(c) => (*c.readkey().as_bytes(), *c.fingerprint()),
        Cap::SdmfRead(c) => (*c.readkey().as_bytes(), *c.fingerprint()),
        Cap::MdmfRead(c) => (*c.readkey().as_bytes(), *c.fingerprint()),
        other => return Err(MutableError::BadCap(other.kind_name().to_string())),
    };
    Ok(ReaderKeys::new(rk, fp))
}

pub(super) fn caps(keys: &WriterKeys, format: MutableFormat) -> (String, String) {
    let wk = *keys.writekey();
    let fp = keys.reader().fingerprint();
    match format {
        MutableFormat::Sdmf => {
            let c = SdmfWriteCap::new(wk, fp);
            (c.to_string(), c.readonly().to_string())
        }
        MutableFormat::Mdmf => {
            let c = MdmfWriteCap::new(wk, fp);
            (c.to_string(), c.readonly().to_string())
        }
    }
}
