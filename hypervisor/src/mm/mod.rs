//! mm layer (to be filled in)
