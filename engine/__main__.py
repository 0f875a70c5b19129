"""`python -m engine COMMAND ...`: the headless commands of engine.cli, e.g. as each process torchrun starts runs
them (``torchrun --nproc-per-node 2 -m engine train design.json``)."""
from engine.openmp import use_passive_wait

use_passive_wait()  # before torch loads

import sys  # noqa: E402

from engine.cli import main  # noqa: E402

sys.exit(main())
