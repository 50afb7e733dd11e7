//! sync layer (to be filled in)
