"""`python -m trunx ...`: the same as the `trunx` command."""
import sys

from trunx.cli import main

sys.exit(main())
