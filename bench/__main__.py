"""python -m bench [--quick] [--out DIR]: see bench/run.py."""
import sys

from bench.run import main

sys.exit(main())
