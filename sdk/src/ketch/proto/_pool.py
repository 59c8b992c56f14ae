"""A descriptor pool of Ketch's own, for its generated protobuf modules.

tritonclient and other Open Inference Protocol libraries register the same
``inference.*`` messages in protobuf's default pool; keeping Ketch's copies in a
private pool lets both live in one process. The wire format is unaffected.
``scripts/gen-proto`` points the generated modules here.
"""

from google.protobuf import descriptor_pool

__all__ = ["Default"]

_POOL = descriptor_pool.DescriptorPool()


def Default() -> descriptor_pool.DescriptorPool:  # noqa: N802 - mirrors descriptor_pool.Default
    """Ketch's private pool, named like ``descriptor_pool.Default`` for the generated code."""
    return _POOL
