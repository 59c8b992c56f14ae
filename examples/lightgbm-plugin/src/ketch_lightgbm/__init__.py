"""ketch-lightgbm: serve LightGBM models with Ketch.

The worked example of ``docs/writing_plugins.md``: the hooks live in
:mod:`ketch_lightgbm.plugin` (the ``lightgbm`` entry point), which imports
lightgbm only when a model loads.
"""

from ketch_lightgbm.options import KNOWN_OPTIONS, LightGBMOptions

__all__ = ["KNOWN_OPTIONS", "LightGBMOptions"]
