"""Floor 3, probes: functions of a denoiser and tensors. The Local Dependency Ratio (`ldr`), the coupling score
kappa (`kappa`), distances to the exact oracles, trajectories, per-sample detectors, and the estimates (means,
standard errors, Wilson intervals, censored fits) every floor above reports with; `any_model` probes any diffusers
model or pipeline folder (the one probe here that reads files)."""
