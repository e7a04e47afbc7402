"""``python -m kerneltheory``: the ``kerneltheory`` command (:func:`kerneltheory.cli.main`), for an environment
whose scripts folder is not on ``PATH``."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
