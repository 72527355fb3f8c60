"""`python -m tests.fuzz`: see `tests.fuzz.runner`."""

from tests.fuzz.runner import main

raise SystemExit(main())
