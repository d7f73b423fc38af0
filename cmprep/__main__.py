"""`python -m cmprep` runs the command line."""

from cmprep.cli import main

main()
