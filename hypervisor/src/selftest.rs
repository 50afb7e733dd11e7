//! Boot self-test over the real layers (to be filled in)
