"""Floor 3, section 5's mathematics: the hypercube (Fourier coefficients, plateau levels, the invariant set M, the
growth rate K(w,b)) and the three-stairs network's data and readings. The training loop that writes a stairs run
folder is `ldrkit.runs.pipeline.run_stairs`."""
