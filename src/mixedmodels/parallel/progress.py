"""An optional tqdm progress bar for long loops of refits (tqdm is an optional extra)."""

from __future__ import annotations

__all__ = ["progress_bar"]


def progress_bar(total: int, enabled: bool, description: str, unit: str = "fit"):
    """A tqdm bar counting fits (or other ``unit``s), or None when disabled or tqdm is not
    installed."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=description, unit=unit)
