import sys

from esrgan.cli import main

sys.exit(main())
