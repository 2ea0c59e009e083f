"""``python -m synthetic``: write one synthetic image to a file."""

from synthetic.cli import main

raise SystemExit(main())
