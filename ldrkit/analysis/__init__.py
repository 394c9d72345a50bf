"""Floor 5, analysis: what the chapters show, computed from Runs. One module per chapter, named after it
(`parity_mlp` is `first_act` and `oracles`; `figure_index`, `parentheses`, `quarter_digits`, `real_text`, `probe_your_model`,
`second_act`, `hypercube_theory`, `three_stairs`, `fixing_it`, `detectors`, `ldr_probe`, `architecture`), and
what several chapters share: `phases` (legibility, phases, chance), `verdicts` (their wording), `kappa_*`
(kappa's calibration, training-time control and transition), `samplers`, `overtraining`, `plots`, `tables`,
`provenance`, `interactive`. Every verdict the book prints is a tested function here, its thresholds at the top
of its module."""
