"""The bad inputs of #13 ("Reliability"), one by one: each ends in a result or in a ValueError/TypeError
naming the argument, never an internal traceback or a silent inf/NaN (tests/test_fuzz.py fuzzes the rest)."""

from __future__ import annotations

import math

import pytest
import torch

import kerneltheory.estimators as E
from kerneltheory import attention, kernels, montecarlo, sparsity, theory
from kerneltheory import turing as T
from kerneltheory.nn import KernelizedAttention, KLTransformer
from kerneltheory.nn.tasks import Batch, entropy_bits, majority_rate, retrieval_label
from kerneltheory.spectral import Gaussian

F64 = torch.float64
META = torch.empty(3, 4, device="meta")


def _x(*shape, scale=1.0, dtype=F64, seed=0):
    return (torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64) * scale).to(dtype)


# ---------------------------------------------------------------------------------------------------
# Meta tensors and devices
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: kernels.softmax(META, META),
        lambda: kernels.gaussian(_x(3, 4), META),
        lambda: E.get("positive/gaussian", 4, 8).draw(torch.Generator().manual_seed(0)).query(META),
        lambda: E.get("trig/gaussian", 4, 8).kernel(META, META),
        lambda: E.get("trig/gaussian", 4, 8).variance(META, META),
        lambda: attention.softmax_attention(META, META, META),
        lambda: attention.kernel_attention(META, META, META, kernels.softmax),
        lambda: sparsity.row_entropy(META),
    ],
    ids=["softmax", "gaussian", "feature_map", "kernel", "variance", "softmax_attention", "kernel_attention",
         "row_entropy"],  # fmt: skip
)
def test_meta_tensors_are_refused_naming_the_argument(call):
    with pytest.raises(ValueError, match=r"\b(x|y|q|a)\b is on the meta device"):
        call()


def test_nn_modules_refuse_meta_inputs():
    with pytest.raises(ValueError, match="x is on the meta device"):
        KernelizedAttention(4, 2)(torch.empty(1, 3, 4, device="meta"))
    model = KLTransformer(5, 2, d_model=4, num_heads=2, num_layers=1)
    with pytest.raises(ValueError, match="tokens is on the meta device"):
        model(torch.empty(1, 3, dtype=torch.int64, device="meta"))


DEVICE_CALLS = {
    "estimators.get": lambda dev: E.get("trig/gaussian", 4, 8, device=dev),
    "law": lambda dev: Gaussian(4, device=dev),
    "KernelizedAttention": lambda dev: KernelizedAttention(4, 2, "favor+", device=dev),
    "KLTransformer": lambda dev: KLTransformer(5, 2, d_model=4, num_heads=2, num_layers=1, device=dev),
    "Batch.to": lambda dev: Batch(torch.ones(1, 2, dtype=torch.int64), torch.ones(1, 2, dtype=torch.bool),
                                  torch.zeros(1, dtype=torch.int64)).to(dev),  # fmt: skip
    "moments": lambda dev: montecarlo.moments(lambda g, r: torch.zeros(r, 2), 4, seed=0, device=dev),
}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised when CUDA is absent")
@pytest.mark.parametrize("where", sorted(DEVICE_CALLS))
def test_cuda_without_cuda_is_refused_naming_device(where):
    with pytest.raises(ValueError, match="device='cuda'.*CUDA is not available"):
        DEVICE_CALLS[where]("cuda")


@pytest.mark.parametrize("where", sorted(DEVICE_CALLS))
@pytest.mark.parametrize("device", ["meta", "tpu", "not a device"])
def test_meta_and_unknown_devices_are_refused_naming_device(where, device):
    with pytest.raises(ValueError, match="device"):
        DEVICE_CALLS[where](device)


# ---------------------------------------------------------------------------------------------------
# Overflow: never a silent inf/NaN
# ---------------------------------------------------------------------------------------------------


def test_softmax_attention_float32_at_huge_norms_is_finite_and_equals_the_float64_result():
    """Scores ~1e40 overflow float32; softmax attention recomputes them in float64 (the row max is then
    subtracted by the softmax, exactly), so the float32 output is the float64 one rounded."""
    q, k, v = _x(2, 5, 4, scale=1e20), _x(2, 6, 4, scale=1e20, seed=1), _x(2, 6, 3, seed=2)
    out = attention.softmax_attention(q.float(), k.float(), v.float())
    assert out.dtype == torch.float32 and bool(torch.isfinite(out).all())
    ref = attention.softmax_attention(q.float().double(), k.float().double(), v.float().double())
    assert torch.equal(out, ref.float())


def test_softmax_attention_beyond_float64_raises_naming_q_k_and_scale():
    x = _x(3, 4, scale=1e160)
    with pytest.raises(ValueError, match=r"overflow float64.*\bq and k\b.*scale"):
        attention.softmax_attention(x, x, x)


@pytest.mark.parametrize("name", [n for n in E.list() if E.get(n, 4, 8).claims.variance])
def test_closed_form_variance_at_norm_1e3_raises_or_is_finite(name):
    # norms 1372 and 1000; the 2 × 2 pairs hold both kinds, x = y and x ≠ y (the ORF variances sum a series whose
    # length grows with ‖x + y‖², for every pair: a third point would more than double their cost)
    x = _x(2, 4, scale=1e3 / 2)
    est = E.get(name, 4, 8)
    try:
        var = est.variance(x, x)
    except ValueError as err:
        assert "x (max norm" in str(err) and "float64" in str(err) and "709.78" in str(err)
    else:
        assert bool(torch.isfinite(var).all())


@pytest.mark.parametrize(
    "fn,dtype",
    [(kernels.softmax, torch.float32), (kernels.softmax, F64), (E.get("positive/gaussian", 4, 8).kernel, F64)],
)
def test_kernels_at_norm_1e3_raise_naming_x_and_the_range(fn, dtype):
    x = _x(3, 4, scale=1e3, dtype=dtype)
    limit = f"{math.log(torch.finfo(dtype).max):.2f}"
    with pytest.raises(ValueError, match=rf"not finite.*{dtype}.*{limit}.*\bx \(max norm"):
        fn(x, x)


@pytest.mark.parametrize(
    "fn", [theory.softmax_trig_variance, theory.softmax_positive_variance, theory.softmax_hyperbolic_variance]
)
def test_theory_variances_at_norm_1e3_raise_naming_x(fn):
    x = _x(4, scale=1e3)
    # paired trig features are exact at x = y (τ = 0): their variance there is 0 at any norm, computed in log space;
    # at y = −x it is e^{2‖x‖²}-sized and overflows
    y = -x if fn is theory.softmax_trig_variance else x
    with pytest.raises(ValueError, match=r"x \(max norm"):
        fn(x, y, 8)
    if fn is theory.softmax_trig_variance:
        assert bool((fn(x, x, 8) == 0).all())
    assert bool(torch.isfinite(fn(x / 1e4, x / 1e4, 8)).all())  # and small inputs still work


def test_theory_variance_names_a_nan_argument():
    with pytest.raises(ValueError, match="log_hh contains NaN"):
        theory.positive_variance(torch.tensor(math.nan), torch.tensor(0.0), torch.tensor(0.0), 4)


def test_feature_maps_that_overflow_raise_naming_x():
    fm = E.get("trig/gaussian", 4, 8).draw(torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"φ\(x\) is not finite.*x \(max norm"):
        fm.query(_x(3, 4, scale=100.0))


def test_gaussian_kernel_sigma_extremes():
    x = _x(3, 2)
    with pytest.raises(ValueError, match="sigma must be >= 2.2"):
        kernels.gaussian(x, x, sigma=1e-310)  # below float64's smallest normal number
    with pytest.raises(ValueError, match="sigma must be <= 3.4"):
        kernels.gaussian(x.float(), x.float(), sigma=1e200)  # not a float32
    assert torch.equal(kernels.gaussian(x, x, sigma=1e200), torch.ones(3, 3, dtype=F64))
    huge = x.float() * 1e20  # ‖x − y‖² overflows float32, ‖x − y‖/σ does not
    assert torch.equal(kernels.gaussian(huge, -huge, sigma=1e30), torch.ones(3, 3))


# ---------------------------------------------------------------------------------------------------
# Empty sequences: n_q = 0 gives an empty output, n_k = 0 raises (a normalisation over no key)
# ---------------------------------------------------------------------------------------------------


def test_attention_with_no_query_is_empty_and_with_no_key_raises():
    fm = E.get("positive/gaussian", 4, 8).draw(torch.Generator().manual_seed(0))
    q0, k, v = _x(0, 4), _x(5, 4), _x(5, 3)
    assert attention.softmax_attention(q0, k, v).shape == (0, 3)
    assert attention.kernel_attention(q0, k, v, kernels.softmax).shape == (0, 3)
    assert attention.linear_attention(q0, k, v, fm).shape == (0, 3)
    for call in (
        lambda: attention.softmax_attention(_x(2, 4), _x(0, 4), _x(0, 3)),
        lambda: attention.softmax_attention(q0, _x(0, 4), _x(0, 3), causal=True),
        lambda: attention.linear_attention(q0, _x(0, 4), _x(0, 3), fm),
        lambda: attention.kernel_attention(_x(2, 4), _x(0, 4), _x(0, 3), kernels.softmax),
    ):
        with pytest.raises(ValueError, match=r"k must have at least one row \(n_k >= 1\)"):
            call()


def test_kernels_on_empty_sets_are_empty_gram_matrices():
    assert kernels.softmax(_x(0, 3), _x(2, 3)).shape == (0, 2)
    assert kernels.arccos1(_x(2, 3), _x(0, 3)).shape == (2, 0)


def test_nn_modules_refuse_empty_sequences():
    with pytest.raises(ValueError, match=r"x must have at least one position"):
        KernelizedAttention(4, 2)(torch.zeros(1, 0, 4))
    with pytest.raises(ValueError, match=r"tokens must have at least one position"):
        KLTransformer(5, 2, d_model=4, num_heads=2, num_layers=1)(torch.zeros(1, 0, dtype=torch.int64))


# ---------------------------------------------------------------------------------------------------
# nn: token indices, dtypes, labels
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1, 5, 100])
def test_kltransformer_refuses_token_ids_out_of_range(bad):
    model = KLTransformer(5, 2, d_model=4, num_heads=2, num_layers=1)
    tokens = torch.tensor([[0, 1, bad]])
    with pytest.raises(ValueError, match=r"tokens must lie in \[0, vocab_size\) = \[0, 5\)"):
        model(tokens)


def test_kernelized_attention_refuses_a_dtype_mismatch_and_integer_dtypes():
    with pytest.raises(ValueError, match="x must match the module's dtype"):
        KernelizedAttention(4, 2)(torch.zeros(1, 3, 4, dtype=F64))
    with pytest.raises(ValueError, match="dtype must be torch.float32 or torch.float64"):
        KernelizedAttention(4, 2, dtype=torch.int64)


def test_task_helpers_validate_labels():
    with pytest.raises(ValueError, match="labels must not be empty"):
        majority_rate(torch.zeros(0, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, ∞\)"):
        entropy_bits(torch.tensor([0, -1]))
    with pytest.raises(ValueError, match=r"values must lie in \[0, 3\)"):
        retrieval_label(torch.tensor([[0, 3]]), 3)
    assert entropy_bits(torch.tensor([0, 1])) == 1.0


# ---------------------------------------------------------------------------------------------------
# Turing constructors
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"num_states": 0, "num_symbols": 3}, "num_states"),
        ({"num_states": 2.5, "num_symbols": 3}, "num_states"),
        ({"num_states": 2, "num_symbols": 1}, "num_symbols"),
        ({"num_states": 2, "num_symbols": "3"}, "num_symbols"),
        ({"num_states": 2, "num_symbols": 3, "num_halting": 2}, "num_halting"),
        ({"num_states": 2, "num_symbols": 3, "num_read_states": 3}, "num_read_states"),
        ({"num_states": 2, "num_symbols": 3, "num_read_states": 0}, "num_read_states"),
    ],
)
def test_random_machine_names_its_bad_argument(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        T.random_machine(0, **kwargs)


def test_turing_constructors_name_their_bad_arguments():
    m = T.random_machine(0, 2, 3)
    with pytest.raises(ValueError, match="generator must be >= 0"):
        T.random_machine(-1, 2, 3)
    with pytest.raises(TypeError, match="machine must be a TuringMachine"):
        T.PerezTransformer("machine")
    with pytest.raises(TypeError, match="exact must be a bool"):
        T.PerezTransformer(m, exact=1)
    with pytest.raises(TypeError, match=r"selections\[1\] must be a Selection"):
        T.PerezTransformer(m, exact=False, selections={1: "hardmax"})
    with pytest.raises(ValueError, match="b must be >= 1"):
        T.BitTransformer(m, 0)
    with pytest.raises(ValueError, match="steps must be >= 0"):
        T.PerezTransformer(m).run((), -1)
    with pytest.raises(ValueError, match="beta must be finite"):
        T.ExpScore(math.inf)
    with pytest.raises(TypeError, match="ratio must be a Fraction or an int"):
        T.RationalExpScore("x")
    with pytest.raises(ValueError, match="length must be >= 0"):
        T.random_word(0, m, -1)


def test_kernelized_attention_raises_on_a_non_finite_output_unless_allowed():
    """A signed map's denominator can vanish (MATH.md §5); planted here as an attention that returns NaN. The
    module names x; nonfinite='allow' (the training loop's choice, which counts and skips such steps) returns
    it as computed."""
    x = _x(2, 3, 4, dtype=torch.float32)

    def broken(q, k, v, mask=None, maps=None):
        return torch.full_like(v, math.nan)

    strict = KernelizedAttention(4, 2, "trig/gaussian")
    lenient = KernelizedAttention(4, 2, "trig/gaussian", nonfinite="allow")
    strict.attend, lenient.attend = broken, broken
    with pytest.raises(ValueError, match="attention output is not finite at these inputs x"):
        strict(x)
    assert bool(torch.isnan(lenient(x)).all())
    with pytest.raises(ValueError, match="nonfinite must be 'raise' or 'allow'"):
        KernelizedAttention(4, 2, nonfinite="clip")


def test_diagnostics_name_their_bad_arguments():
    from kerneltheory.nn import diagnostics

    a = KernelizedAttention(4, 2, "favor+")
    with pytest.raises(TypeError, match="learned must be a KernelizedAttention"):
        diagnostics.kernel_distance(a, "b", _x(2, 3, 2), _x(2, 3, 2))
    with pytest.raises(ValueError, match="copies of one layer"):
        diagnostics.spectrum_shift(a, KernelizedAttention(4, 1, "favor+"))
    with pytest.raises(ValueError, match="draws must be >= 1"):
        diagnostics.attention_distance(a, a, _x(2, 3, 2), _x(2, 3, 2), draws=0)
    with pytest.raises(ValueError, match=r"q and k must share one shape \[B, H, n, d\] with n >= 1"):
        diagnostics.held_out_pairs(_x(1, 2, 0, 2), _x(1, 2, 0, 2), 4)
    with pytest.raises(ValueError, match="num_pairs must be >= 1"):
        diagnostics.held_out_pairs(_x(1, 2, 3, 2), _x(1, 2, 3, 2), 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_all_finite_decides_exactly_where_the_sum_overflows(dtype):
    """``all_finite`` reduces by a sum; finite entries whose sum overflows must still count as finite, and any NaN,
    +inf, −inf (alone or cancelling as +inf − inf) as not finite; ``check_points`` and linear attention rely on it."""
    from kerneltheory._validation import all_finite, check_points

    big = torch.finfo(dtype).max
    assert all_finite(torch.full((4, 3), big, dtype=dtype))  # the sum is inf, every entry finite
    assert all_finite(torch.zeros(0, 3, dtype=dtype))
    for bad in (math.nan, math.inf, -math.inf):
        x = torch.ones(5, 3, dtype=dtype)
        x[3, 1] = bad
        assert not all_finite(x)
        with pytest.raises(ValueError, match="x contains NaN or infinite"):
            check_points(x, "x")
    x = torch.ones(5, 3, dtype=dtype)
    x[0, 0], x[4, 2] = math.inf, -math.inf
    assert not all_finite(x)


def test_requests_larger_than_the_machine_are_refused_naming_the_argument(monkeypatch):
    """Draws or lengths whose data alone would fill the machine ended in the allocator's error (or swapping) far into
    the run; they are refused before anything is allocated, naming the argument to lower. The machine's memory is
    set to 1 MiB (4 KiB) here, so modest requests exceed half of it; the same calls run at the real memory
    elsewhere."""
    import kerneltheory._validation as V
    from kerneltheory.testing.attention_audit import check_attention
    from kerneltheory.testing.samplers import callable_sampler_checks

    assert V.physical_memory() is None or V.physical_memory() > 2**30
    monkeypatch.setattr(V, "physical_memory", lambda: 2**20)
    with pytest.raises(ValueError, match=r"draws = 4096 of 8×4 frequencies .* use fewer draws \(kerneltheory audit: "
                                         r"--draws\)"):
        callable_sampler_checks(lambda g: torch.randn(8, 4, generator=g), claims="gaussian", draws=4096, seed=0)

    def attention(m, generator):
        return lambda q, k, v, mask=None: torch.cumsum(v, 1) / torch.arange(1, v.shape[1] + 1)[:, None]

    # 120 000 bytes: the widest batch, nine sequences of 64 tokens of dimension 2 (36 KiB), fits in half of it, the
    # [64, 64] matrix (64 KiB) does not; both are refused before the function is called
    monkeypatch.setattr(V, "physical_memory", lambda: 120_000)
    with pytest.raises(ValueError, match=r"attention matrix of the causality row at L = 64 .* --exact-length"):
        check_attention(attention, dim=2, causal=True, mask=False, checks=["causality"], seed=0,
                        num_features=(16, 32, 64, 128), exact_length=33, long_length=64)
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"a batch of 9 sequences of 10000000000 tokens of dimension 8 .* --long"):
        check_attention(attention, dim=8, mask=False, checks=["batch"], seed=0, long_length=10**10)


def test_wrapped_functions_report_bad_calls_as_python_does():
    """The finite-result wrapper bound the arguments first, and its TypeError named neither the function nor an
    unknown keyword ("missing a required argument: 'num_features'" for num_feature=4; a new user's trial)."""
    x = torch.tensor(0.5, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"gaussian_kernel_trig_variance\(\) got an unexpected keyword argument "
                                        r"'num_feature'"):
        theory.gaussian_kernel_trig_variance(x, num_feature=4)
    with pytest.raises(TypeError, match=r"gaussian_kernel_trig_variance\(\) takes 2 positional arguments"):
        theory.gaussian_kernel_trig_variance(x, 4, 5)


def test_an_overflow_in_float64_does_not_advise_float64():
    big = torch.full((1, 4), 30.0, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"use smaller inputs$"):
        kernels.softmax(big, big)
    with pytest.raises(ValueError, match=r"use smaller inputs or float64$"):
        kernels.softmax(big.float(), big.float())


def test_key_covariance_of_a_registry_name_says_what_to_pass():
    from kerneltheory.testing.attention_theory import key_covariance

    q = torch.zeros(2, 4, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"estimator must be a RandomFeatureEstimator .* got str \(a registry name "
                                        r"has no m: pass kerneltheory.estimators.get\('positive/gaussian', dim"):
        key_covariance("positive/gaussian", q, q)
