"""`python -m sendergate`: the same as the `sendergate` command."""

import sys

from .cli import main

sys.exit(main())
