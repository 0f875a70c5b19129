"""LayerStudio's engine: designs, layers, analysis, building, data, training and weights.

Qt-free by rule (a test checks it), so the GUI, the CLI and the tests all drive
the same code. Importing ``engine`` does not import torch; the modules that
need it (build, blocks, data, training, io) import it themselves.
"""
import os

# OpenMP threads that busy-wait at barriers collapse when another torch process (or a second thread
# team in this one) wants the cores: LeNet on 2 cores went from 0.3 s to 23 s an epoch. A short spin
# and then sleep keeps CPU training steady (measured here, LeNet epoch quiet / beside a second run:
# busy-wait 0.3 / 23 s, 2000 spins 0.36 / 0.9 s, no spin 0.56 / 0.7 s). It must be set before torch
# loads its OpenMP runtime; a user's own settings win.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GOMP_SPINCOUNT", "2000")
