"""``python -m demo.quiet_gateway``: ``python -m gateway`` as the demo starts it, TF kept quiet."""

from demo.quiet import quiet_tensorflow

quiet_tensorflow()

from gateway.__main__ import main  # noqa: E402 - after TensorFlow was loaded quietly

try:
    raise SystemExit(main())
except KeyboardInterrupt:  # Ctrl-C reaches the whole terminal group; the runner says "stopping"
    raise SystemExit(130) from None
