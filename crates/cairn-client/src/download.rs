//! CHK download driver (to be written).
