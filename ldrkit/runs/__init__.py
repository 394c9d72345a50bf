"""Floor 4, runs: files that never come out half-written, the run folder and its one owner (`run.Run`), a spec's
objects (`setup.Setup`), training, the evaluation pipeline, the results store, the run request (`request`: spec,
then store, then folder, then training, then record), reproductions and sweeps."""
