"""The verification engine: calibrated statistical checks of claims, for our estimators and any user's map.

* :func:`check_feature_map` / :func:`assert_feature_map` — verify a user's feature map against an exact kernel;
* :func:`verify_estimator` — every claim of a registered estimator, with verdicts (the claim matrix);
* :mod:`~kerneltheory.testing.checks` — the tests themselves (Hoeffding, CLT with a fourth-moment guard,
  median of means, variance, exhaustive properties);
* :mod:`~kerneltheory.testing.attention_checks` — linear attention's error against exact attention falls like
  m^{−1/2}; stabilisers leave attention unchanged;
* :mod:`~kerneltheory.testing.samplers` — distribution checks of a law's rows (KS of coordinates, projections and
  norms, sign balance per row index, orthogonality within blocks, independence across rows or blocks, scale);
* :mod:`~kerneltheory.testing.ordering` — ordering claims (orthogonal ≤ iid, hyperbolic ≤ positive, OPRF ≤
  positive on its sequence, paired ≤ phase) and the 1/m law;
* :mod:`~kerneltheory.testing.reliance` — a claimed variance serves the unbiasedness test only where it is
  tested and confirmed;
* :mod:`~kerneltheory.testing.sequential` — sequential looks with α-spending; :mod:`~kerneltheory.testing.planted`
  and :mod:`~kerneltheory.testing.power` — planted defects, the power table and the time to a verdict;
* :mod:`~kerneltheory.testing.attention_theory` — attention as a ratio estimator, uniform convergence;
* :mod:`~kerneltheory.testing.adapters` and :mod:`~kerneltheory.testing.attention_audit` — auditing outside code:
  global-RNG samplers, ``nn.Module`` feature maps and attention layers, :func:`check_attention`;
* :mod:`~kerneltheory.testing.inputs` — input families; :mod:`~kerneltheory.testing.strategies` — hypothesis
  strategies; :mod:`~kerneltheory.testing.plugin` — the pytest plugin (``--kt-seed``, ``kt_seed``).
"""

from . import strategies
from .adapters import (
    attention_from_module,
    bind_statistics,
    from_module,
    global_rng,
    global_rng_sampler,
    module_frequencies,
    proportional_check,
)
from .attention_audit import check_attention
from .attention_checks import attention_convergence_check, stabiliser_legality_check
from .attention_theory import (
    attention_ratio_check,
    attention_theory_rows,
    finite_set_uniform_check,
    rks_uniform_check,
)
from .checks import CheckResult
from .matrix import Verdict, verify_estimator
from .ordering import one_over_m_check, ordering_claims, variance_ordering_check
from .planted import planted_map
from .samplers import callable_sampler_checks, sampler_checks
from .seeds import seed_for
from .sequential import alpha_spending
from .verify import Report, assert_feature_map, check_feature_map

__all__ = [
    "attention_from_module",
    "bind_statistics",
    "callable_sampler_checks",
    "check_attention",
    "from_module",
    "global_rng",
    "global_rng_sampler",
    "module_frequencies",
    "proportional_check",
    "attention_convergence_check",
    "attention_ratio_check",
    "attention_theory_rows",
    "finite_set_uniform_check",
    "rks_uniform_check",
    "alpha_spending",
    "planted_map",
    "stabiliser_legality_check",
    "CheckResult",
    "Report",
    "Verdict",
    "assert_feature_map",
    "check_feature_map",
    "seed_for",
    "strategies",
    "verify_estimator",
    "one_over_m_check",
    "ordering_claims",
    "sampler_checks",
    "variance_ordering_check",
]
