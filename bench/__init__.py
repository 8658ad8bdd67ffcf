"""Load and component benchmarks: ``make bench``.

- ``run``: the command line, ``python -m bench.run``: runs the parts, writes the results;
- ``servers``: the servers under test (no-op, bare, naive, the service), their cold start;
- ``load``: wrk against each server, cells measured in rounds;
- ``soak``: the service under a mix of valid and invalid uploads;
- ``report``: the markdown tables and the targets;
- ``system``: processes, CPU and memory from /proc, the machine;
- ``inputs``: the uploads, generated at run time; ``components``: where one request's
  time goes (``python -m bench.components``);
- ``noop_app``, ``bare_app``, ``naive_app``: the servers the service is measured against.
"""
