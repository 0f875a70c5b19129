"""LayerStudio's engine: designs, layers, analysis, building, data, training and weights.

Qt-free by rule (a test checks it), so the GUI, the CLI and the tests all drive
the same code. Importing ``engine`` does not import torch; the modules that
need it (build, blocks, data, training, io) import it themselves.
"""
import os

# OpenMP threads that busy-wait at every barrier collapse when another process (or the GUI's own
# thread) wants a core: LeNet on 2 cores went from 0.7 s to 23 s an epoch. Passive waiting keeps CPU
# training steady; it must be set before torch loads its OpenMP runtime. A user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
