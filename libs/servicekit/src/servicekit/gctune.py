"""Garbage-collector setting for a long-running service.

Reference counting frees almost every object of a request or a message at once; the cyclic
collector only looks for cycles. CPython runs it every 700 net allocations of container objects by
default, which under load is every few messages (an AMQP delivery alone allocates dozens), and the
ingest benchmark spent about a tenth of its CPU there. A larger generation-0 threshold makes those
passes rare; the older generations keep their ratios.
"""

import gc


def tune_gc(*, gen0_threshold: int) -> None:
    """Set the generation-0 threshold; <= 0 leaves CPython's thresholds as they are."""
    if gen0_threshold > 0:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(gen0_threshold, gen1, gen2)
