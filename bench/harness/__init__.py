"""The benchmark harness behind ``bench/run.py`` (the command line): typed, standard library
only, so the benchmark runs wherever the project's Python does.

- ``workload``: what is sent and what a correct answer is (scenarios, headers, bodies)
- ``options``: the run's settings, as parsed by ``bench/run.py``
- ``log``: progress lines on stderr
- ``procfs``: CPU, RSS and process trees read from /proc
- ``procs``: every process the harness starts, pinned to CPUs and stopped by group id
- ``probe``: plain HTTP to a contender, free ports
- ``contenders``: who is measured, how each is started and checked before timing
- ``tools``: installing what is missing, and the versions a run records
- ``wrk``: the load generator and its Lua report
- ``measure``: one timed window, and the slow-client memory check
- ``report``: medians, per-round ratios, the markdown tables and the JSON document
- ``runner``: one whole run, from files to report
- ``compare``: ``bench/micro.py --against``, this checkout against another, interleaved
"""
