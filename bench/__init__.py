"""``make bench`` (``python -m bench``): the product's speed measured against baselines taken in the same run.

* :mod:`bench.servers` — the emulators and the function host for one run (free loopback ports, stopped by
  PID), the bare baseline function (:mod:`bench.bare`);
* :mod:`bench.load` — concurrent senders (HTTP pushes, storage CloudEvents) and what they measured;
* :mod:`bench.counting` — a counting gRPC interceptor on the Firestore client: reads, writes and round trips
  per event;
* :mod:`bench.items` — the measurements, one function per item of issue 11;
* :mod:`bench.report` — the table, the ratios, ``bench/results.json`` and one SVG chart per item.
"""
