"""The kernel-learning experiment (a thin wrapper: the logic lives in :mod:`kerneltheory.nn.experiment` so
that the installed ``kerneltheory train`` command runs it too).

    python experiments/kernel_learning.py --scale quick --device cpu --out experiments/kernel_learning
    python experiments/kernel_learning.py --scale full --device cuda --out experiments/kernel_learning_full
"""

from kerneltheory.nn.experiment import main

if __name__ == "__main__":
    raise SystemExit(main())
