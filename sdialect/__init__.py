"""The `sdialect` command line: one entry point over the golden model, RTL, kernels and evaluation."""
