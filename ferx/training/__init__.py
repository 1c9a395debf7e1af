"""Training a network: the loop (`loop`: epochs, selection on PublicTest, EMA, freezing), its
optimisers and schedules (`optim`), resuming a killed run (`resume`), what it shows while it
runs (`progress`), the run that writes a model and its metrics (`run`), augmentation, class
weights, what improve starts from (`improve_init`) and which ferx files a run executes
(`source_code`)."""
