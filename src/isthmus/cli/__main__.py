"""`python -m isthmus.cli ARGS` runs the `isthmus` command (the demo starts it this way)."""

from isthmus.cli.main import main

if __name__ == "__main__":
    main()
