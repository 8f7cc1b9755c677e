"""Benchmark commands' library side: each module returns plain dicts that cli/bench.py prints."""
