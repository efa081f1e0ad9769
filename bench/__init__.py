"""The performance suite of odp-logging: ``python -m bench`` writes ``docs/performance.md``.

``bench.__main__`` plans and runs the scenarios, ``bench.scenarios`` runs one of them in
a fresh interpreter, ``bench._harness`` holds the shared timing, endpoint and process
helpers, ``bench.peers`` sets up the libraries compared with, ``bench._sink`` is the
Segment-compatible endpoint and ``bench._report`` writes the results. The
``bench_*.py`` scripts measure one integration each, in more detail.
"""
