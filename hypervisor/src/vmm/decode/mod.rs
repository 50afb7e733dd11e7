//! Instruction decoding for MMIO emulation (to be filled in)
