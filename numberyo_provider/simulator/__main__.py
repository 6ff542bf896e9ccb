"""``python -m numberyo_provider.simulator``: the same as ``numberyo simulate``."""

from numberyo_provider.cli.simulate import main

if __name__ == "__main__":
    raise SystemExit(main())
