"""Synthetic long-sequence tasks of the kernel-learning experiment (re-exported from
:mod:`kerneltheory.nn.tasks`, where the installed package can import them): ListOps (MAX, MIN, MED, SM mod 10
over nested brackets, any length) and retrieval with controllable sparsity (k planted tokens among n decide
the label).

    >>> from experiments.tasks import listops_batch, retrieval_task, evaluate_listops
    >>> evaluate_listops("[MAX 2 9 [MIN 4 7 ] 0 ]")
    9
"""

from kerneltheory.nn import tasks as _tasks
from kerneltheory.nn.tasks import *  # noqa: F403 (the module's public names, listed once in its __all__)

__all__ = list(_tasks.__all__)
