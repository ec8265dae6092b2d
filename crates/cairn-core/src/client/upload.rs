//! CHK upload state machine (to be written).
