//! Guest loaders (to be filled in)
