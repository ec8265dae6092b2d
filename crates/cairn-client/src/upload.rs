//! CHK upload driver (to be written).
