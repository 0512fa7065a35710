"""Subcommands of `sdialect` that belong to the golden model (formats, quantize, matmul, bench, tour)."""
