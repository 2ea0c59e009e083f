"""``python -m demo --model-dir export``: serve the demo model and grade the sample images."""

from demo.serve import main

raise SystemExit(main())
