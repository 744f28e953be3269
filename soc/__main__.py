import sys

from soc.cli import main

sys.exit(main())
