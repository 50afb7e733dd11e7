//! Device models (to be filled in)
