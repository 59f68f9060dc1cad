"""The data plane: KServe predictor, local router, golden-set prober and Triton export."""
