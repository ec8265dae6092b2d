//! CHK download state machine (to be written).
