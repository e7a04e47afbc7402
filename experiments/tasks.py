"""Synthetic long-sequence tasks of the kernel-learning experiment (re-exported from
:mod:`kerneltheory.nn.tasks`, where the installed package can import them): ListOps (MAX, MIN, MED, SM mod 10
over nested brackets, any length) and retrieval with controllable sparsity (k planted tokens among n decide
the label).

    >>> from experiments.tasks import listops_batch, retrieval_task, evaluate_listops
    >>> evaluate_listops("[MAX 2 9 [MIN 4 7 ] 0 ]")
    9
"""

from kerneltheory.nn.tasks import (  # noqa: F401
    LISTOPS_OPERATORS,
    LISTOPS_VOCAB,
    RETRIEVAL_RULES,
    Batch,
    entropy_bits,
    evaluate_listops,
    listops_batch,
    listops_expression,
    majority_rate,
    retrieval_label,
    retrieval_task,
    retrieval_vocab_size,
    task_batch,
)

__all__ = [
    "LISTOPS_OPERATORS",
    "LISTOPS_VOCAB",
    "RETRIEVAL_RULES",
    "Batch",
    "entropy_bits",
    "evaluate_listops",
    "listops_batch",
    "listops_expression",
    "majority_rate",
    "retrieval_label",
    "retrieval_task",
    "retrieval_vocab_size",
    "task_batch",
]
