"""Training, headless: teach the loaded model, pretrain a tiny one, prefer an answer (DPO).

Each mode is a run object whose `steps()` generator yields one `TrainStep` per
optimiser step (see loop.py); the Train pane, the CLI (`llmtui train`) and the demo
all consume the same records. Weights of a loaded model change only through a
`Tuning` (tuning.py), which can always put the original weights back bit for bit.
"""
