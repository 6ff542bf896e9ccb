import sys

from numberyo_provider.cli import main

sys.exit(main())
