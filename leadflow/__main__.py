"""`python -m leadflow`: the command line."""

from leadflow.cli import main

main()
