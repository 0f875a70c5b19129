"""LayerStudio's engine: designs, layers, analysis, building, data, training and weights.

Qt-free by rule (a test checks it), so the GUI, the CLI and the tests all drive
the same code. Importing ``engine`` does not import torch; the modules that
need it (build, blocks, data, training, io) import it themselves.
"""
