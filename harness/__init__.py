"""Test and bench harness: real processes on 127.0.0.1 (the TF Serving stand-in, the gateway,
the naive baseline), gateway stacks, TCP gates and the load generator.

Imported by the test suite, the benches and the reliability runners alike; it imports none of
them.
"""
