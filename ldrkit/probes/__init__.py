"""Floor 3, probes: pure functions of a denoiser and tensors. The Local Dependency Ratio (`ldr`), the coupling
score kappa (`kappa`), distances to the exact oracles, trajectories, per-sample detectors, and the estimates
(means, standard errors, Wilson intervals) every floor above reports with."""
