"""Benchmark suites as users run them: ``completeverify bench`` and ``completeverify plot``.

Modules: ``suite`` (instances.csv / ground_truth.csv), ``results`` (the results
CSV format), ``runner`` (one verifier process per instance; sequential, local
pool or Dask), ``forkserver`` (the pre-imported server that forks those
processes in the default isolation), ``run`` (resume and append), ``report``
(summary table), ``plot`` (cactus plots); the subcommands live in ``completeverify.cli.bench``.
"""
