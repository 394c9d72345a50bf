"""Floor 2, denoisers: the DDPM schedule and its samplers, the networks (MLP, diffusers UNet and DiT), the exact
oracles of a data set, the symbol-conditioned remedy and critic guidance, all with one signature
`model(x, t) -> eps`; `diffusers_adapter` gives any diffusers network and scheduler that signature; and the device
they run on. Nothing here knows of run folders."""
