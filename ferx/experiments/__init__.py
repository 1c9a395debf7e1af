"""`ferx-ablate`, the ablation table, split by concern:

- spec.py: the spec file, its rows and seeds, and each run's complete resolved params;
- identity.py: what makes an experiment stand for a run (its params and the stages' inputs);
- queue.py: DVC's experiment queue and `dvc exp show` (every baseline commit);
- stats.py: means, spreads and the paired bootstrap interval against the reference row;
- table.py: the table's records and markdown; frontier.py: the two accuracy-vs-cost frontiers;
- cli.py: the command (queue, wait, collect, write).

Nothing here imports torch: the tool drives DVC, which runs the stages in their own processes.
"""
