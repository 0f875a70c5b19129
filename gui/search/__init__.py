"""The window's Search tab: an optuna search of the training settings and the design's knobs (engine.search).

``install_search(window, controller, sweep)`` adds the tab; the search runs on a thread of the training
controller (gui.training.controller, state SEARCHING), so closing the window stops it and waits, and nothing
else uses the device beside it.
"""
from __future__ import annotations


def install_search(window, controller, sweep=None):
    """Add the Search tab to ``window`` (a full-width tab); returns the SearchView."""
    from gui.search.view import SearchView

    view = SearchView(controller, sweep=sweep)
    window.add_tab(view, "Search", full_width=True)
    return view
