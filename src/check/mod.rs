//! Checks of the method's claims that need no training: `agml check invariance`.

pub mod invariance;
