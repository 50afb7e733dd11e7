//! arch: the trusted base. Every `unsafe` block of the kernel lives under
//! this module and carries a `SAFETY:` comment.
pub mod context;
