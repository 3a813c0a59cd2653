//! Alphadome core.
