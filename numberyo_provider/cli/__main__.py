import sys

from numberyo_provider.cli import console_main

sys.exit(console_main())
