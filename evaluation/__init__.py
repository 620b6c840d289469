"""Offline evaluation of matching: held-out partnerships, baselines, beyond-accuracy measures and
the report staff read (``partnermatch evaluate``), plus the rebalancing trade-off sweep
(``partnermatch sensitivity``). Benchmarks of speed live here too (bench_*.py).

Entry points: :func:`evaluation.run.evaluate_store`, :func:`evaluation.report.write_report`,
:func:`evaluation.report.latest_report`, :func:`evaluation.sensitivity.run_sensitivity`.
"""
