//! Kernel thread context switch (to be filled in)
