//! proc layer (to be filled in)
