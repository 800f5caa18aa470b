"""Pure domain: what an attempt trains and returns, how it ends and why, its progress and the
rules of reporting it. Imports no training, network or broker library."""
