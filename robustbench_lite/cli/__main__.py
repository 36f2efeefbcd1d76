"""`python -m robustbench_lite.cli`: the `rb` command."""

import sys

from robustbench_lite.cli.main import main

sys.exit(main())
