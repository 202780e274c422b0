import sys

from avdf.cli import main

sys.exit(main())
