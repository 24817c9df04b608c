"""Compiled loops that scan a block of candidates and screen them in floating point.

A kernel walks a block far faster than exact arithmetic can, computes each candidate's
witness value in float64 with a proven error bound, and returns only the candidates
that bound cannot rule out: those that might exceed the store threshold, reach
e^gamma, or be the block's best. The strategies settle those exactly, so a block's
result is the same, bit for bit, as the exact path's.

Kernels are compiled by numba once per process and cached on disk; see
`riemann.kernels.jit` for where the cache lives.
"""
