//! thread layer (to be filled in)
