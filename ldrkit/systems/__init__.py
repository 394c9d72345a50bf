"""Floor 1, symbol systems: a rule P_G over symbol sequences (sample, validate, enumerate, split), its renderer h
into the ambient space and its reader h^-1, and the four categories of a generated sample. `registry` builds a
system by the name a spec uses. Nothing here knows of models or runs."""
