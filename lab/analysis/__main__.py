"""python -m lab.analysis: see lab.analysis.cli."""

from lab.analysis.cli import main

raise SystemExit(main())
