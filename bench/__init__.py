"""`make bench`: how fast the volunteer-facing API is on PostgreSQL, on one small machine.

Two measurements, each printed as `name: value` lines and saved to bench/results/latest.json:

- Classification throughput (`bench.classify`): POST /api/classifications/ under 32
  concurrent keep-alive clients against gunicorn, next to the bare GET /api/health/ on the
  same server as the framework's own ceiling.
- Queue latency at Rubin scale (`bench.rubin`): GET /api/workflows/{id}/queue/ for many
  volunteers over 250,000 subjects and 1,000,000 classifications.

Web server, database and load generator share the machine's cores, so the load generator
and the CPU split between the three (`bench.cpu`) are reported too. Linux only: the load
generator uses epoll and the CPU split reads /proc.
"""
