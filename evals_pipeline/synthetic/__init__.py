"""Synthetic inputs (seed 001 step 1, seed 000 move 6): dimension tuples, generation,
de-duplication and a calibrated realism filter; admitted inputs enter the active pool."""
