"""`python -m bench.cli` is `bench`."""
import sys

from bench.cli import main

sys.exit(main())
