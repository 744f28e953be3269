import sys

from soc.cli import entry

sys.exit(entry())
