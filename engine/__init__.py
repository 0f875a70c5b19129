"""LayerStudio's engine: designs, layers, analysis, building, data, training and weights.

Qt-free by rule (a test checks it), so the GUI, the CLI and the tests all drive
the same code. Importing ``engine`` does not import torch (the modules that
need it import it themselves) and changes no process-wide state; entry points
set the OpenMP wait policy themselves (``engine.openmp``).
"""
