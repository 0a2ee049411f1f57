import sys

from mgenet.cli import main

sys.exit(main())
