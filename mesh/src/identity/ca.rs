//! CA
