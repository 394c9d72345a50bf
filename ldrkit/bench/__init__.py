"""Floor 5, benchmarks: the exact LDR against its batched-backward bound (`ldr`), the noised inputs an LDR needs
(`samples`), a training step part by part (`step`), training at the paper's sizes (`train`); `report` is what
they share."""
