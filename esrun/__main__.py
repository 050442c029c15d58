import sys

from esrun.cli import main

sys.exit(main())
