"""`python -m engine COMMAND ...`: the headless commands of engine.cli, e.g. as each process torchrun starts runs
them (``torchrun --nproc-per-node 2 -m engine train design.json``)."""
import sys

if __name__ == "__main__":
    from engine.openmp import use_passive_wait

    use_passive_wait()  # before torch loads
    from engine.cli import main

    sys.exit(main())
