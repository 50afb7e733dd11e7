//! arch: the trusted base
