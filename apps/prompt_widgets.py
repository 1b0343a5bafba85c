"""Panel widgets that hand a change from the browser to the server at once.

Panel collects a widget's browser changes for 50 ms (``Syncable._debounce``) before it
applies them. The design controls do not need that: the store already collapses rapid
changes (``apps.store.DEBOUNCE_S``), and the wait was a sixth of every design update. On the
Patient tab it let a click on the body diagram overtake the channel choice made just before.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["prompt_widget"]


@lru_cache(maxsize=None)
def prompt_widget(widget_type):
    """``widget_type`` (a Panel widget class) without Panel's 50 ms wait before a change is applied."""
    return type(f"Prompt{widget_type.__name__}", (widget_type,), {"_debounce": 0})
