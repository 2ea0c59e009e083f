"""``python -m synthetic``: write one synthetic image to a file."""

from synthetic import main

raise SystemExit(main())
