"""What a correct sampler's rows may show besides a pass: the scale row, decided by a median of means where its
guard fails, is refused where it resolves no deviation of E‖z‖² as large as d (proofs/verification.md, item 3(b)):
at a few hundred draws the guard fails for a few percent of seeds. A refusal is never a pass, and never a failure."""


def passed_or_unresolved(row) -> bool:
    """The row passed, or is a refusal because its test resolves nothing as large as its target."""
    return row.passed or (row.refused and "no pair resolves" in row.detail)
